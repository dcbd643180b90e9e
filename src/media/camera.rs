//! The device as a member: owns the camera's signaling member(s), the shared capture and every
//! peer, and turns signaling messages into peer operations and peer events into messages.
//!
//! It runs on its own thread with a single-threaded runtime, so GStreamer state changes (which
//! may block briefly) never stall the network runtime. Everything here happens in one loop;
//! GStreamer callbacks only post events to it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_webrtc as gst_webrtc;
use tokio::sync::{mpsc, oneshot};

use super::fanout::Fanout;
use super::ice::{self, Remote};
use super::peer::{offer_caps, EventSender, IceSettings, Peer, PeerEvent, PeerKey, Role};
use super::MediaError;
use crate::signaling::hub::{MemberSink, Overflow};
use crate::signaling::{ConversationKind, Hub, Incoming, Outgoing};

/// What the camera needs to know.
#[derive(Debug, Clone)]
pub struct CameraSettings {
    /// The standing broadcast, and the camera's member id.
    pub conversation: String,
    /// Most viewers at once.
    pub max_viewers: usize,
    /// gst-launch description of capture + encode, ending in H.264 (stream-format=avc).
    pub launch: String,
    /// ICE addresses and STUN.
    pub ice: IceSettings,
    /// A peer that has not connected within this time is released.
    pub negotiation_timeout: Duration,
}

/// Live counts, shared with the HTTP stats and the watchdog.
#[derive(Debug, Default)]
pub struct CameraStats {
    /// Peers (webrtcbins) alive.
    pub peers: AtomicUsize,
    /// Branches attached to the shared encoder.
    pub branches: AtomicUsize,
    /// Peers whose connection is up.
    pub connected: AtomicUsize,
    /// Encoded frames produced since start.
    pub frames: AtomicU64,
    /// Whether capture is running.
    pub capturing: AtomicUsize,
}

/// A snapshot of [`CameraStats`] for JSON.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct CameraSnapshot {
    /// Peers alive.
    pub peers: usize,
    /// Branches attached.
    pub branches: usize,
    /// Peers connected.
    pub connected: usize,
    /// Encoded frames since start.
    pub frames: u64,
    /// Capture running.
    pub capturing: bool,
}

impl CameraStats {
    /// Current values.
    pub fn snapshot(&self) -> CameraSnapshot {
        CameraSnapshot {
            peers: self.peers.load(Ordering::Relaxed),
            branches: self.branches.load(Ordering::Relaxed),
            connected: self.connected.load(Ordering::Relaxed),
            frames: self.frames.load(Ordering::Relaxed),
            capturing: self.capturing.load(Ordering::Relaxed) != 0,
        }
    }
}

/// The running camera; stops (the broadcast ends, peers close) when dropped or stopped.
pub struct CameraHandle {
    stats: Arc<CameraStats>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Makes the DTLS certificate at start-up.
    certificate: Option<std::thread::JoinHandle<()>>,
}

impl CameraHandle {
    /// Live counts.
    pub fn stats(&self) -> &Arc<CameraStats> {
        &self.stats
    }

    /// Ends the broadcast, closes every peer and waits for the camera thread.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(t) = self.certificate.take() {
            let _ = t.join();
        }
    }
}

impl Drop for CameraHandle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Queues messages for one of the device's members into the camera loop.
struct DeviceSink(mpsc::Sender<(String, Outgoing)>);

impl MemberSink for DeviceSink {
    fn deliver(&self, to: &str, msg: &Outgoing) -> Result<(), Overflow> {
        self.0
            .try_send((to.to_owned(), msg.clone()))
            .map_err(|_| Overflow)
    }
}

/// Bounds of the camera loop's queues: signaling for every peer of a busy camera fits with
/// room to spare; overflow drops the device's member as for any slow member.
const SIGNAL_QUEUE: usize = 4096;
const EVENT_QUEUE: usize = 4096;

/// Time after capture stops before its freed memory is returned: streaming, ICE and DTLS
/// threads finish releasing theirs within it.
const TRIM_DELAY: Duration = Duration::from_secs(2);

/// The longest an offer or answer waits for local candidates to travel in it. Host
/// candidates take a few milliseconds; a STUN server that is slow to answer must not hold
/// the viewer up, and its candidates trickle after the description.
const GATHER_WAIT: Duration = Duration::from_millis(100);

/// Starts the camera: joins the hub as `settings.conversation`, creates the standing
/// broadcast, and serves viewers until stopped.
pub fn start(hub: Arc<Hub>, settings: CameraSettings) -> Result<CameraHandle, MediaError> {
    gst::init().map_err(|e| MediaError::Pipeline(format!("GStreamer init: {e}")))?;
    for factory in [
        "webrtcbin",
        "rtph264pay",
        "queue",
        "capsfilter",
        "tee",
        "dtlsdec",
    ] {
        if gst::ElementFactory::find(factory).is_none() {
            return Err(MediaError::MissingElement(factory.into()));
        }
    }
    // Building the capture once up front reports a broken description at start-up.
    drop(Fanout::new(&settings.launch)?);
    // Off the start-up path (it would hold back readiness by ~300 ms), but well before a
    // first viewer is likely to arrive.
    // Joined when the camera stops: exiting while OpenSSL is mid-generation crashes the
    // process in its exit handlers.
    let certificate = std::thread::Builder::new()
        .name("dtls-cert".into())
        .spawn(prepare_dtls_certificate)
        .ok();

    let (sig_tx, sig_rx) = mpsc::channel(SIGNAL_QUEUE);
    let (ev_tx, ev_rx) = mpsc::channel(EVENT_QUEUE);
    let (stop_tx, stop_rx) = oneshot::channel();
    // Errors arrive in bursts (one per element of a failing chain); the loop needs one.
    let (bus_tx, bus_rx) = mpsc::channel(64);
    let stats = Arc::new(CameraStats::default());
    hub.connect_as(&settings.conversation, Arc::new(DeviceSink(sig_tx.clone())))
        .map_err(|e| MediaError::Pipeline(e.to_string()))?;
    let me = settings.conversation.clone();
    hub.handle(
        &me,
        Incoming::Create {
            conversation: me.clone(),
            kind: ConversationKind::Broadcast,
        },
    );
    hub.with_core(|c| c.set_viewer_limit(&me, Some(settings.max_viewers)));

    let mut camera = Camera {
        hub,
        settings,
        sig_tx,
        events: ev_tx,
        fanout: None,
        peers: HashMap::new(),
        invited: HashMap::new(),
        stats: stats.clone(),
        mdns: None,
        bus_errors: bus_tx,
        invites_made: 0,
        trim_at: None,
    };
    let thread = std::thread::Builder::new()
        .name("camera".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    log::error!("camera runtime: {e}");
                    return;
                }
            };
            rt.block_on(camera.run(sig_rx, ev_rx, stop_rx, bus_rx));
        })
        .map_err(|e| MediaError::Pipeline(format!("camera thread: {e}")))?;
    Ok(CameraHandle {
        stats,
        stop: Some(stop_tx),
        thread: Some(thread),
        certificate,
    })
}

/// The first DTLS certificate costs ~300 ms to generate; doing it now keeps it off the first
/// viewer's join. GStreamer's DTLS agent keeps it for the life of the process.
fn prepare_dtls_certificate() {
    let t = Instant::now();
    if let Ok(dec) = gst::ElementFactory::make("dtlsdec").build() {
        let _ = dec.property::<Option<String>>("pem");
        log::debug!("DTLS certificate ready in {:?}", t.elapsed());
    }
}

struct PeerEntry {
    peer: Peer,
    created: Instant,
    connected: bool,
    /// Offerer: whether the offer has been asked for.
    offered: bool,
    /// Our offer or answer, applied but held back until the host candidates are gathered
    /// (a few milliseconds), so that they travel in it.
    unsent: Option<(gst_webrtc::WebRTCSDPType, String)>,
    /// Local candidates gathered while the description is held back.
    gathered: Vec<(u32, String)>,
    /// Answerer: whether the remote offer has been applied.
    offer_applied: bool,
}

struct Camera {
    hub: Arc<Hub>,
    settings: CameraSettings,
    sig_tx: mpsc::Sender<(String, Outgoing)>,
    events: EventSender,
    /// Built on the first viewer, dropped (capture stopped) after the last.
    fanout: Option<Fanout>,
    peers: HashMap<PeerKey, PeerEntry>,
    /// Members the device joined MESH conversations with: member id → conversation.
    invited: HashMap<String, String>,
    stats: Arc<CameraStats>,
    mdns: Option<mdns_sd::ServiceDaemon>,
    /// Element paths of pipeline errors, from the bus.
    bus_errors: mpsc::Sender<String>,
    /// Invites accepted so far (numbers the invited members' ids).
    invites_made: u64,
    /// When to return the memory freed by stopping capture to the system.
    trim_at: Option<Instant>,
}

impl Camera {
    async fn run(
        &mut self,
        mut signals: mpsc::Receiver<(String, Outgoing)>,
        mut events: mpsc::Receiver<(PeerKey, PeerEvent)>,
        mut stop: oneshot::Receiver<()>,
        mut bus_errors: mpsc::Receiver<String>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = &mut stop => break,
                Some(path) = bus_errors.recv() => self.on_pipeline_error(&path),
                Some((member, msg)) = signals.recv() => self.on_signal(&member, msg),
                Some((key, ev)) = events.recv() => self.on_event(key, ev),
                _ = tick.tick() => {
                    self.expire_stalled();
                    self.trim_if_due();
                }
            }
        }
        for key in self.peers.keys().cloned().collect::<Vec<_>>() {
            self.remove_peer(&key);
        }
        for member in self.invited.keys().cloned().collect::<Vec<_>>() {
            self.hub.disconnect(&member);
        }
        // The broadcaster leaving tells every viewer `left` and `end`.
        self.hub.disconnect(&self.settings.conversation);
        self.fanout = None;
    }

    fn on_signal(&mut self, me: &str, msg: Outgoing) {
        match msg {
            Outgoing::OfferRequest { from } => {
                if let Err(e) = self.new_offerer(me, &from) {
                    log::warn!(peer = from.as_str(); "cannot serve viewer: {e}");
                }
            }
            Outgoing::Finalize { from, sdp } => {
                let key = (me.to_owned(), from);
                if let Some(entry) = self.peers.get(&key) {
                    log::debug!(peer = key.1.as_str(); "answer after {:?}", entry.created.elapsed());
                    if let Err(e) = entry.peer.set_remote_answer(&sdp) {
                        log::warn!(peer = key.1.as_str(); "{e}");
                        self.remove_peer(&key);
                    }
                }
            }
            Outgoing::AnswerRequest { from, sdp } => {
                if let Err(e) = self.new_answerer(me, &from, &sdp) {
                    log::warn!(peer = from.as_str(); "cannot answer: {e}");
                    self.remove_peer(&(me.to_owned(), from));
                }
            }
            Outgoing::Candidate { from, candidate } => {
                self.on_remote_candidate((me.to_owned(), from), &candidate)
            }
            Outgoing::Left { from } => {
                self.remove_peer(&(me.to_owned(), from));
                self.leave_if_alone(me);
            }
            Outgoing::End { .. } => self.leave_if_alone(me),
            Outgoing::Invite { from, conversation } => self.accept_invite(&from, conversation),
            Outgoing::Error { code, message } => {
                log::warn!(member = me; "signaling error {code}: {message}");
                if self.invited.contains_key(me) && self.peers.keys().all(|k| k.0 != me) {
                    // The join failed (e.g. the room is gone): drop that member.
                    self.invited.remove(me);
                    self.hub.disconnect(me);
                }
            }
            Outgoing::Created { .. }
            | Outgoing::Joined { .. }
            | Outgoing::NewJoined { .. }
            | Outgoing::Text { .. }
            | Outgoing::Ping => {}
        }
    }

    fn accept_invite(&mut self, from: &str, conversation: String) {
        if self.invited.values().any(|c| *c == conversation) {
            log::info!("already in {conversation:?}; invite from {from} ignored");
            return;
        }
        // A recognisable id (`camera-1`, ...) lets pages label the camera's tile.
        let member = loop {
            self.invites_made += 1;
            let id = format!("{}-{}", self.settings.conversation, self.invites_made);
            let sink = Arc::new(DeviceSink(self.sig_tx.clone()));
            if self.hub.connect_as(&id, sink).is_ok() {
                break id;
            }
        };
        log::info!(member = member.as_str(); "invited by {from} into {conversation:?}");
        self.invited.insert(member.clone(), conversation.clone());
        self.hub.handle(&member, Incoming::Join { conversation });
    }

    /// An invited member whose every peer has gone leaves the room.
    fn leave_if_alone(&mut self, me: &str) {
        if self.invited.contains_key(me) && self.peers.keys().all(|k| k.0 != me) {
            self.invited.remove(me);
            self.hub.disconnect(me);
        }
    }

    fn fanout(&mut self) -> Result<&mut Fanout, MediaError> {
        if self.fanout.is_none() {
            let f = Fanout::new(&self.settings.launch)?;
            watch_bus(f.pipeline(), self.stats.clone(), self.bus_errors.clone());
            self.fanout = Some(f);
        }
        // Just set above when missing.
        Ok(self.fanout.as_mut().expect("fanout"))
    }

    fn new_offerer(&mut self, me: &str, viewer: &str) -> Result<(), MediaError> {
        let key = (me.to_owned(), viewer.to_owned());
        self.remove_peer(&key);
        let peer = Peer::new(
            key.clone(),
            Role::Offerer,
            &self.settings.ice,
            self.events.clone(),
        )?;
        let fanout = self.fanout()?;
        fanout.add(peer.bin())?;
        let mut entry = PeerEntry {
            peer,
            created: Instant::now(),
            connected: false,
            offered: false,
            unsent: None,
            gathered: Vec::new(),
            offer_applied: false,
        };
        match fanout.link(entry.peer.bin()) {
            Ok(pad) => entry.peer.tee_pad = Some(pad),
            Err(e) => {
                fanout.remove(entry.peer.bin(), None);
                return Err(e);
            }
        }
        // A running stream's caps are known now: offer without waiting for the next frame
        // to reach the new branch. Otherwise the branch's first caps bring the offer.
        if let Some(caps) = fanout.current_caps().and_then(|c| offer_caps(&c)) {
            entry.peer.create_offer(&caps, &self.events);
            entry.offered = true;
        }
        self.peers.insert(key, entry);
        self.update_counts();
        Ok(())
    }

    fn new_answerer(&mut self, me: &str, offerer: &str, sdp: &str) -> Result<(), MediaError> {
        let key = (me.to_owned(), offerer.to_owned());
        self.remove_peer(&key);
        let mut peer = Peer::new(
            key.clone(),
            Role::Answerer,
            &self.settings.ice,
            self.events.clone(),
        )?;
        peer.prepare_answer(sdp)?;
        let fanout = self.fanout()?;
        fanout.add(peer.bin())?;
        match fanout.link(peer.bin()) {
            Ok(pad) => peer.tee_pad = Some(pad),
            Err(e) => {
                fanout.remove(peer.bin(), None);
                return Err(e);
            }
        }
        self.peers.insert(
            key,
            PeerEntry {
                peer,
                created: Instant::now(),
                connected: false,
                offered: false,
                unsent: None,
                gathered: Vec::new(),
                offer_applied: false,
            },
        );
        self.update_counts();
        Ok(())
    }

    fn on_event(&mut self, key: PeerKey, ev: PeerEvent) {
        let Some(entry) = self.peers.get_mut(&key) else {
            return;
        };
        log::debug!(peer = key.1.as_str(); "{} after {:?}", event_name(&ev), entry.created.elapsed());
        match ev {
            PeerEvent::CapsReady(caps) => match entry.peer.role() {
                Role::Offerer if entry.offered => {}
                Role::Offerer => {
                    entry.peer.create_offer(&caps, &self.events);
                    entry.offered = true;
                }
                Role::Answerer => entry.peer.apply_offer(&caps, &self.events),
            },
            PeerEvent::RemoteOfferSet => {
                entry.offer_applied = true;
                entry.peer.decline_other_media();
                entry.peer.create_answer(&self.events);
            }
            PeerEvent::LocalDescription(desc) => {
                let sdp = match desc.sdp().as_text() {
                    Ok(t) => t,
                    Err(e) => {
                        log::warn!(peer = key.1.as_str(); "SDP: {e}");
                        return;
                    }
                };
                // Applying it starts gathering; the description goes out when that is done
                // (host candidates take a few milliseconds) or after GATHER_WAIT at most.
                entry.unsent = Some((desc.type_(), sdp));
                entry.peer.set_local(&desc);
                let (tx, key) = (self.events.clone(), key.clone());
                tokio::spawn(async move {
                    tokio::time::sleep(GATHER_WAIT).await;
                    let _ = tx.send((key, PeerEvent::GatheringWaitOver)).await;
                });
            }
            PeerEvent::GatheringComplete | PeerEvent::GatheringWaitOver => {
                let Some((kind, sdp)) = entry.unsent.take() else {
                    return;
                };
                let sdp = ice::with_candidates(&sdp, &std::mem::take(&mut entry.gathered));
                let to = key.1.clone();
                let msg = match kind {
                    gst_webrtc::WebRTCSDPType::Offer => Incoming::OfferResponse { to, sdp },
                    _ => Incoming::AnswerResponse { to, sdp },
                };
                self.hub.handle(&key.0, msg);
            }
            PeerEvent::LocalCandidate { mline, candidate } => {
                if entry.unsent.is_some() {
                    entry.gathered.push((mline, candidate));
                    return;
                }
                self.hub.handle(
                    &key.0,
                    Incoming::Candidate {
                        to: key.1.clone(),
                        candidate: ice::to_json(mline, &candidate),
                    },
                );
            }
            PeerEvent::State(state) => {
                use gst_webrtc::WebRTCPeerConnectionState as S;
                log::debug!(peer = key.1.as_str(); "connection {state:?}");
                match state {
                    S::Connected => {
                        entry.connected = true;
                        // The keyframe sent on attach went out before DTLS was up; and the
                        // peer's RTP session, made during negotiation, has no latency yet.
                        if let Some(f) = &self.fanout {
                            f.force_keyframe();
                            let _ = f.pipeline().recalculate_latency();
                        }
                        log::info!(peer = key.1.as_str(); "viewer connected");
                        self.update_counts();
                    }
                    S::Failed | S::Closed => {
                        log::info!(peer = key.1.as_str(); "connection {state:?}; releasing");
                        self.remove_peer(&key);
                    }
                    _ => {}
                }
            }
            PeerEvent::Failed(why) => {
                log::warn!(peer = key.1.as_str(); "negotiation failed: {why}");
                self.remove_peer(&key);
            }
        }
    }

    fn on_remote_candidate(&mut self, key: PeerKey, json: &str) {
        let Some(entry) = self.peers.get(&key) else {
            return;
        };
        match ice::from_json(json) {
            Ok(Remote::Add { mline, candidate }) => entry.peer.add_candidate(mline, &candidate),
            Ok(Remote::Mdns {
                mline,
                candidate,
                host,
            }) => self.resolve_later(key, mline, candidate, host),
            Ok(Remote::Skip) => {}
            Err(e) => log::info!(peer = key.1.as_str(); "{e}"),
        }
    }

    /// Resolves a `.local` candidate off the loop, then adds it if the peer still exists.
    fn resolve_later(&mut self, key: PeerKey, mline: u32, candidate: String, host: String) {
        if self.mdns.is_none() {
            match mdns_sd::ServiceDaemon::new() {
                Ok(d) => self.mdns = Some(d),
                Err(e) => {
                    log::warn!("mDNS unavailable, dropping {host}: {e}");
                    return;
                }
            }
        }
        let Some(daemon) = self.mdns.clone() else {
            return;
        };
        let tx = self.sig_tx.clone();
        std::thread::spawn(move || {
            match ice::resolve_mdns(&daemon, &host, Duration::from_secs(3)) {
                Some(ip) => {
                    let candidate = ice::with_address(&candidate, ip);
                    // Re-enter the loop as if the peer had sent the resolved candidate.
                    let _ = tx.try_send((
                        key.0,
                        Outgoing::Candidate {
                            from: key.1,
                            candidate: ice::to_json(mline, &candidate),
                        },
                    ));
                }
                None => log::info!("could not resolve {host}; candidate dropped"),
            }
        });
    }

    fn remove_peer(&mut self, key: &PeerKey) {
        let Some(entry) = self.peers.remove(key) else {
            return;
        };
        if let Some(fanout) = self.fanout.as_mut() {
            fanout.remove(entry.peer.bin(), entry.peer.tee_pad.as_ref());
            if fanout.branches() == 0 {
                // Nobody watches: stop the camera and the encoder.
                self.fanout = None;
                self.trim_at = Some(Instant::now() + TRIM_DELAY);
            }
        }
        self.update_counts();
    }

    /// Hands the heap freed by the stopped capture back to the system once GStreamer's
    /// threads have let go of it. glibc keeps freed memory in its per-thread arenas, so
    /// without this the device stays 30-70 MB above idle after the last viewer leaves.
    fn trim_if_due(&mut self) {
        if self.fanout.is_some() || self.trim_at.is_none_or(|t| Instant::now() < t) {
            return;
        }
        self.trim_at = None;
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            let t = Instant::now();
            // SAFETY: malloc_trim only walks the allocator's own free lists.
            unsafe { libc::malloc_trim(0) };
            log::debug!("heap trimmed in {:?}", t.elapsed());
        }
    }

    /// A failure inside one peer's branch costs only that peer; a failure of the capture or
    /// encoder ends every peer (their viewers see the connection drop and can rejoin) and
    /// capture restarts with the next viewer.
    fn on_pipeline_error(&mut self, path: &str) {
        let in_peer = self
            .peers
            .keys()
            .find(|k| path.contains(&format!("/peer-{}", k.1)))
            .cloned();
        match in_peer {
            Some(key) => self.remove_peer(&key),
            None if self.fanout.is_some() => {
                log::error!("capture failed; closing every peer");
                for key in self.peers.keys().cloned().collect::<Vec<_>>() {
                    self.remove_peer(&key);
                }
                self.fanout = None;
                self.update_counts();
            }
            None => {}
        }
    }

    fn expire_stalled(&mut self) {
        let timeout = self.settings.negotiation_timeout;
        let stale: Vec<PeerKey> = self
            .peers
            .iter()
            .filter(|(_, e)| !e.connected && e.created.elapsed() > timeout)
            .map(|(k, _)| k.clone())
            .collect();
        for key in stale {
            log::info!(peer = key.1.as_str(); "negotiation abandoned; releasing");
            self.remove_peer(&key);
        }
    }

    fn update_counts(&self) {
        let s = &self.stats;
        s.peers.store(self.peers.len(), Ordering::Relaxed);
        s.branches.store(
            self.fanout.as_ref().map_or(0, |f| f.branches()),
            Ordering::Relaxed,
        );
        s.connected.store(
            self.peers.values().filter(|e| e.connected).count(),
            Ordering::Relaxed,
        );
        s.capturing
            .store(usize::from(self.fanout.is_some()), Ordering::Relaxed);
    }
}

fn event_name(ev: &PeerEvent) -> &'static str {
    match ev {
        PeerEvent::CapsReady(_) => "caps ready",
        PeerEvent::RemoteOfferSet => "remote offer applied",
        PeerEvent::LocalDescription(_) => "local description",
        PeerEvent::LocalCandidate { .. } => "local candidate",
        PeerEvent::State(_) => "state change",
        PeerEvent::GatheringComplete => "gathering complete",
        PeerEvent::GatheringWaitOver => "gathering wait over",
        PeerEvent::Failed(_) => "failure",
    }
}

/// Counts encoded frames (for health checks) and forwards pipeline errors to the camera loop
/// as the name of the element that failed.
fn watch_bus(pipeline: &gst::Pipeline, stats: Arc<CameraStats>, errors: mpsc::Sender<String>) {
    if let Some(tee) = pipeline.by_name("fanout") {
        if let Some(pad) = tee.static_pad("sink") {
            let counter = stats.clone();
            pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                counter.frames.fetch_add(1, Ordering::Relaxed);
                gst::PadProbeReturn::Ok
            });
        }
    }
    let Some(bus) = pipeline.bus() else { return };
    bus.set_sync_handler(move |_, msg| {
        match msg.view() {
            gst::MessageView::Error(e) => {
                let path = e
                    .src()
                    .map(|s| s.path_string().to_string())
                    .unwrap_or_default();
                log::error!(
                    "pipeline error from {path}: {} ({})",
                    e.error(),
                    e.debug().unwrap_or_default()
                );
                let _ = errors.try_send(path);
            }
            gst::MessageView::Warning(w) => {
                log::warn!("capture pipeline warning: {}", w.error())
            }
            _ => {}
        }
        gst::BusSyncReply::Drop
    });
}
