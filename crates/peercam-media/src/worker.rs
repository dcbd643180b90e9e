//! The media worker (`peercam-media worker`): the process that holds the camera's peers, the
//! shared capture and the encoder, run by the device (camera.rs) with a Unix socket as its
//! stdin (messages in wire.rs).
//!
//! GStreamer lives here and not in the serving process, so that
//! - everything a viewing session loads and allocates (libnice and its TLS and UPnP
//!   libraries, SRTP, the encoder, per-thread heap arenas) goes away with the worker when the
//!   last viewer leaves: the device returns to its idle footprint;
//! - a crash in a plugin or a camera driver ends this process, not signaling: the device
//!   ends the broadcast (viewers rejoin) and carries on with a fresh worker.
//!
//! An offer states the stream's H.264 profile. With the capture running it is read from the
//! encoder's caps. With the capture stopped, the offer is made at once, stating the profile
//! the stream had last (this worker's, or one before it, as the device tells); webrtcbin is
//! then left to accept whatever profile the encoder produces, so that a stated profile the
//! stream no longer has costs a log line, not the capture. Only a worker that never saw the
//! stream, with none to tell it, waits for the first frame's caps.
//!
//! The loop is single-threaded; GStreamer callbacks only post events to it.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_webrtc as gst_webrtc;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::mpsc;

use super::fanout::Fanout;
use super::ice::{self, Remote};
use super::peer::{
    early_offer_caps, offer_caps, profile_of, state_profile, EventSender, Peer, PeerEvent, PeerKey,
    Role,
};
use super::MediaError;
use peercam_signaling::{Incoming, Outgoing};
use peercam_wire::{
    self as wire, CameraSnapshot, Capture, Chosen, FromWorker, ToWorker, WorkerSettings,
};

/// Bound of the loop's event queue: events for every peer of a busy camera fit with room to
/// spare.
const EVENT_QUEUE: usize = 4096;

/// Bound of the queue of messages to the device. The device reads continuously; a full
/// queue means it is gone or wedged, and the worker stops.
const SEND_QUEUE: usize = 4096;

/// The longest an offer or answer waits for local candidates to travel in it. Host
/// candidates take a few milliseconds; a STUN server that is slow to answer must not hold
/// the viewer up, and its candidates trickle after the description.
const GATHER_WAIT: Duration = Duration::from_millis(100);

/// How often abandoned negotiations are looked for (and so, while capturing, how often the
/// frame count is reported).
const TICK: Duration = Duration::from_millis(250);

/// Runs the worker on stdin until the device says stop or goes away. The exit status tells
/// the device only whether it ended cleanly; what failed was sent as `Failed` first.
pub fn main() -> anyhow::Result<()> {
    die_with_parent();
    // SAFETY: fd 0 is the socket the device made for this process and nothing else in the
    // process uses or closes it.
    let socket = unsafe { OwnedFd::from_raw_fd(std::io::stdin().as_raw_fd()) };
    let socket = std::os::unix::net::UnixStream::from(socket);
    socket
        .set_nonblocking(true)
        .context("stdin is not the device's socket")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("worker runtime")?;
    rt.block_on(serve(socket))
}

/// The device dying (even by SIGKILL) takes the worker with it, camera and all.
fn die_with_parent() {
    #[cfg(target_os = "linux")]
    // SAFETY: prctl with these arguments only sets this process's parent-death signal.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
    }
}

async fn serve(socket: std::os::unix::net::UnixStream) -> anyhow::Result<()> {
    let (read, write) = UnixStream::from_std(socket)?.into_split();
    let mut lines = BufReader::new(read).lines();
    let (out_tx, out_rx) = mpsc::channel(SEND_QUEUE);
    let writer = tokio::spawn(wire::write_lines(write, out_rx));

    let first = lines
        .next_line()
        .await?
        .context("the device sent nothing")?;
    let theirs = wire::protocol_of(&first);
    if theirs != wire::PROTOCOL {
        let error = wire::mismatch("this media program", "the device", theirs);
        let _ = out_tx.try_send(FromWorker::Failed {
            selecting: false,
            error: error.clone(),
        });
        drop(out_tx);
        let _ = writer.await;
        bail!("{error}");
    }
    let ToWorker::Start(settings) = wire::decode(&first).context("first message")? else {
        bail!("the first message was not Start");
    };
    let settings = *settings;
    crate::logging::init(&settings.log_level);
    let launch = match start(&settings) {
        Ok((launch, chosen)) => {
            let _ = out_tx.try_send(FromWorker::Ready {
                protocol: wire::PROTOCOL,
                launch: launch.clone(),
                chosen,
            });
            launch
        }
        Err((selecting, error)) => {
            let _ = out_tx.try_send(FromWorker::Failed { selecting, error });
            drop(out_tx);
            let _ = writer.await;
            std::process::exit(1);
        }
    };
    // Made now, while the device has nobody to serve yet: it takes ~100-300 ms (longer on a
    // Pi), and GStreamer's DTLS agent keeps it for the life of the process.
    // Off the loop's thread, so that `Ready` is written at once.
    let _ = tokio::task::spawn_blocking(prepare_dtls_certificate).await;
    let _ = out_tx.try_send(FromWorker::Warm);

    let (ev_tx, ev_rx) = mpsc::channel(EVENT_QUEUE);
    let (bus_tx, bus_rx) = mpsc::channel(64);
    let (sig_tx, sig_rx) = mpsc::channel(EVENT_QUEUE);
    let mut worker = Worker {
        settings,
        launch,
        out: out_tx,
        events: ev_tx,
        resolved: sig_tx,
        fanout: None,
        peers: HashMap::new(),
        frames: Arc::new(AtomicU64::new(0)),
        mdns: None,
        bus_errors: bus_tx,
        handled: 0,
        reported: None,
        primed: false,
    };
    worker.run(lines, sig_rx, ev_rx, bus_rx).await;
    drop(worker);
    let _ = writer.await;
    Ok(())
}

/// Initialises GStreamer and settles the capture: `Err((selecting, message))`.
fn start(settings: &WorkerSettings) -> Result<(String, Option<Chosen>), (bool, String)> {
    gst::init().map_err(|e| (false, format!("GStreamer init: {e}")))?;
    for factory in [
        "webrtcbin",
        "rtph264pay",
        "queue",
        "capsfilter",
        "tee",
        "dtlsdec",
    ] {
        if gst::ElementFactory::find(factory).is_none() {
            return Err((
                false,
                MediaError::MissingElement(factory.into()).to_string(),
            ));
        }
    }
    let (launch, chosen) = match &settings.capture {
        Capture::Launch(launch) => (launch.clone(), None),
        Capture::Select(camera) => {
            let selection =
                super::select::capture_pipeline(camera).map_err(|e| (true, e.to_string()))?;
            let chosen = Chosen {
                source: selection.source.fragment.name.clone(),
                encoder: selection.encoder.fragment.name.clone(),
                summary: selection.to_string(),
            };
            (selection.launch, Some(chosen))
        }
    };
    if settings.validate {
        drop(Fanout::new(&launch).map_err(|e| (false, e.to_string()))?);
    }
    Ok((launch, chosen))
}

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
    /// Offerer: the `profile-level-id` the offer states, when it was made before the
    /// stream's caps reached the branch.
    stated_profile: Option<String>,
    /// Our offer or answer, applied but held back until the host candidates are gathered
    /// (a few milliseconds), so that they travel in it.
    unsent: Option<(gst_webrtc::WebRTCSDPType, String)>,
    /// Local candidates gathered while the description is held back.
    gathered: Vec<(u32, String)>,
}

impl PeerEntry {
    fn new(peer: Peer) -> PeerEntry {
        PeerEntry {
            peer,
            created: Instant::now(),
            connected: false,
            offered: false,
            stated_profile: None,
            unsent: None,
            gathered: Vec::new(),
        }
    }
}

struct Worker {
    settings: WorkerSettings,
    launch: String,
    out: mpsc::Sender<FromWorker>,
    events: EventSender,
    /// `.local` candidates, once resolved, come back in as if the viewer had sent them.
    resolved: mpsc::Sender<(String, Outgoing)>,
    /// Built on the first peer, dropped (capture stopped) after the last.
    fanout: Option<Fanout>,
    peers: HashMap<PeerKey, PeerEntry>,
    /// Encoded frames since start, advanced by a pad probe on the tee.
    frames: Arc<AtomicU64>,
    mdns: Option<mdns_sd::ServiceDaemon>,
    /// Element paths of pipeline errors, from the bus.
    bus_errors: mpsc::Sender<String>,
    /// `Signal` messages handled.
    handled: u64,
    /// What was last reported to the device.
    reported: Option<(CameraSnapshot, u64)>,
    /// Priming has been started (it is done once per worker).
    primed: bool,
}

type Lines = tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>;

impl Worker {
    async fn run(
        &mut self,
        mut lines: Lines,
        mut resolved: mpsc::Receiver<(String, Outgoing)>,
        mut events: mpsc::Receiver<(PeerKey, PeerEvent)>,
        mut bus_errors: mpsc::Receiver<String>,
    ) {
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                line = lines.next_line() => match line {
                    Ok(Some(line)) if line.len() <= wire::MAX_LINE => {
                        match wire::decode::<ToWorker>(&line) {
                            Ok(ToWorker::Signal { member, msg }) => {
                                self.on_signal(&member, msg);
                                self.handled += 1;
                            }
                            Ok(ToWorker::Prime) => self.prime(),
                            Ok(ToWorker::Stop) => break,
                            Ok(ToWorker::Start(_)) => log::warn!("worker already started"),
                            Err(e) => log::warn!("bad message from the device: {e}"),
                        }
                    }
                    Ok(Some(_)) => log::warn!("oversized message from the device dropped"),
                    // The device closed the socket or is gone.
                    Ok(None) | Err(_) => break,
                },
                Some(path) = bus_errors.recv() => self.on_pipeline_error(&path),
                Some((member, msg)) = resolved.recv() => self.on_signal(&member, msg),
                Some((key, ev)) = events.recv() => self.on_event(key, ev),
                _ = tick.tick() => self.expire_stalled(),
            }
            self.report();
        }
        for key in self.peers.keys().cloned().collect::<Vec<_>>() {
            self.remove_peer(&key);
        }
        self.fanout = None;
    }

    /// Builds, and throws away, what a viewer's session builds: the capture pipeline (not
    /// started, so no camera is opened) and a peer that makes and applies an offer. Loading
    /// the plugins and libraries, and the first offer's one-time set-up, are most of what a
    /// worker's first session costs beyond a later one's.
    ///
    /// It runs on a thread of its own, so that a viewer whose offer request arrives meanwhile
    /// (the page loads while this runs, and the machine is busiest then) is served at once
    /// instead of after it: the viewer's session builds the same things, and whatever the
    /// rehearsal has loaded by then is loaded for it too.
    fn prime(&mut self) {
        if self.primed || self.fanout.is_some() || !self.peers.is_empty() {
            return;
        }
        self.primed = true;
        let launch = self.launch.clone();
        let ice = self.settings.ice.clone();
        let events = self.events.clone();
        let key = (self.settings.conversation.clone(), "prime".to_owned());
        let spawned = std::thread::Builder::new()
            .name("prime".into())
            .spawn(move || {
                let t = Instant::now();
                let built = Fanout::new(&launch).and_then(|_capture| {
                    Peer::new(key, Role::Offerer, &ice, events)?.rehearse_offer()
                });
                match built {
                    Ok(()) => log::debug!("primed in {:?}", t.elapsed()),
                    Err(e) => log::debug!("priming failed: {e}"),
                }
            });
        if let Err(e) = spawned {
            log::debug!("priming not started: {e}");
        }
    }

    /// Remembers the stream's H.264 profile and tells the device, which hands it to later
    /// workers: their first offer then states it at once.
    fn learn_profile(&mut self, profile: Option<String>) {
        let Some(profile) = profile else { return };
        let known = &mut self.settings.stream_profile;
        if known.as_ref() != Some(&profile) {
            *known = Some(profile.clone());
            let _ = self.out.try_send(FromWorker::Stream {
                profile_level_id: profile,
            });
        }
    }

    fn send(&self, member: &str, msg: Incoming) {
        let msg = FromWorker::Send {
            member: member.to_owned(),
            msg,
        };
        if self.out.try_send(msg).is_err() {
            log::warn!("the device is not reading; message dropped");
        }
    }

    /// Sends the counts when they or the number of messages handled changed since the last
    /// report: after each message and event, and (for the frame count) each tick while
    /// capturing. The device knows the counts are current when `handled` equals what it sent.
    fn report(&mut self) {
        let now = (self.snapshot(), self.handled);
        if self.reported == Some(now) {
            return;
        }
        self.reported = Some(now);
        let _ = self.out.try_send(FromWorker::Stats {
            stats: now.0,
            handled: now.1,
        });
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
                self.release_if_alone(me);
            }
            Outgoing::End { .. } => self.release_if_alone(me),
            Outgoing::Error { code, message } => {
                log::warn!(member = me; "signaling error {code}: {message}");
                self.release_if_alone(me);
            }
            Outgoing::Created { .. }
            | Outgoing::Joined { .. }
            | Outgoing::NewJoined { .. }
            | Outgoing::Text { .. }
            | Outgoing::Invite { .. }
            | Outgoing::NegotiationFailed { .. }
            | Outgoing::Ping => {}
        }
    }

    /// Tells the device that `me` has no peer left (a member it was invited as then leaves
    /// its room).
    fn release_if_alone(&self, me: &str) {
        if self.peers.keys().all(|k| k.0 != me) {
            let _ = self.out.try_send(FromWorker::Release {
                member: me.to_owned(),
            });
        }
    }

    fn fanout(&mut self) -> Result<&mut Fanout, MediaError> {
        if self.fanout.is_none() {
            let f = Fanout::new(&self.launch)?;
            watch_bus(f.pipeline(), self.frames.clone(), self.bus_errors.clone());
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
        let mut entry = PeerEntry::new(peer);
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
        } else if let Some(profile) = &self.settings.stream_profile {
            entry.peer.create_offer(&early_offer_caps(), &self.events);
            entry.offered = true;
            entry.stated_profile = Some(profile.clone());
        }
        self.peers.insert(key, entry);
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
        self.peers.insert(key, PeerEntry::new(peer));
        Ok(())
    }

    fn on_event(&mut self, key: PeerKey, ev: PeerEvent) {
        let Some(entry) = self.peers.get_mut(&key) else {
            return;
        };
        log::debug!(peer = key.1.as_str(); "{} after {:?}", event_name(&ev), entry.created.elapsed());
        match ev {
            PeerEvent::CapsReady(caps) => {
                let seen = profile_of(&caps);
                if let Some(stated) = &entry.stated_profile {
                    if seen.as_ref().is_some_and(|p| p != stated) {
                        log::info!(peer = key.1.as_str();
                            "the stream's profile-level-id is {seen:?}; the offer stated {stated}");
                    }
                }
                match entry.peer.role() {
                    Role::Offerer if entry.offered => {}
                    Role::Offerer => {
                        entry.peer.create_offer(&caps, &self.events);
                        entry.offered = true;
                    }
                    Role::Answerer => entry.peer.apply_offer(&caps, &self.events),
                }
                self.learn_profile(seen);
            }
            PeerEvent::RemoteOfferSet => {
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
                let sdp = match &entry.stated_profile {
                    Some(p) if desc.type_() == gst_webrtc::WebRTCSDPType::Offer => {
                        state_profile(&sdp, p)
                    }
                    _ => sdp,
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
                self.send(&key.0, msg);
            }
            PeerEvent::LocalCandidate { mline, candidate } => {
                if entry.unsent.is_some() {
                    entry.gathered.push((mline, candidate));
                    return;
                }
                self.send(
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
        let tx = self.resolved.clone();
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
            }
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

    /// The counts as reported to the device.
    fn snapshot(&self) -> CameraSnapshot {
        CameraSnapshot {
            peers: self.peers.len(),
            branches: self.fanout.as_ref().map_or(0, |f| f.branches()),
            connected: self.peers.values().filter(|e| e.connected).count(),
            frames: self.frames.load(Ordering::Relaxed),
            capturing: self.fanout.is_some(),
        }
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

/// Counts encoded frames (for health checks) and forwards pipeline errors to the loop as the
/// name of the element that failed.
fn watch_bus(pipeline: &gst::Pipeline, frames: Arc<AtomicU64>, errors: mpsc::Sender<String>) {
    if let Some(tee) = pipeline.by_name("fanout") {
        if let Some(pad) = tee.static_pad("sink") {
            pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                frames.fetch_add(1, Ordering::Relaxed);
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
