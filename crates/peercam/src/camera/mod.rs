//! The device as a member: owns the camera's signaling members (the standing broadcast, and
//! the members it is invited into MESH rooms as) and hands their peer work to a media worker
//! process (worker.rs), one at a time:
//!
//! ```text
//!  hub ──(member, message)──▶ camera loop ──Signal──▶ active worker  (peers, capture, encode)
//!      ◀──────────────────────            ◀──Send───
//!                                         spare worker (GStreamer ready, DTLS certificate made)
//! ```
//!
//! - A spare worker waits, initialised, so a viewer's offer never waits for GStreamer to start
//!   or for a DTLS certificate to be generated. When someone opens the page (or a signaling
//!   WebSocket), the spare is primed: it loads what a session needs and rehearses an offer,
//!   in the ~100 ms before the page joins. A primed spare nobody used is replaced after a
//!   minute.
//! - The first offer or answer request makes the spare the active worker; a new spare starts
//!   a few seconds later. Once the active worker has no peer left (and has handled everything
//!   sent to it) and the new spare is warm, the active worker exits: whatever a viewing
//!   session loaded or allocated leaves with it. Until then it serves whoever comes next.
//! - An offer needs the stream's H.264 profile, which the encoder states only with its first
//!   frame, tens of milliseconds after the capture starts. Workers report the profile they
//!   saw; each new worker is told the last one, and offers at once with it while the capture
//!   starts (worker.rs).
//! - A worker that dies ends the broadcast (viewers get `end`, and the page rejoins) and
//!   the rooms the device was invited into; signaling carries on, and a new worker starts,
//!   sooner for a first failure than for repeated ones. Peers that come meanwhile wait for
//!   it (unless they leave first) instead of getting no offer at all.
//!
//! The loop runs on its own thread with a single-threaded runtime.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};

pub mod process;
pub mod stats;

use self::process::{Process, WorkerEvent};
pub use self::stats::CameraStats;
pub use peercam_wire::CameraSnapshot;
use peercam_wire::{Capture, Chosen, FromWorker, IceSettings, WorkerSettings};

use crate::signaling::hub::{IdTaken, MemberSink, Overflow};
use crate::signaling::{ConversationKind, Hub, Incoming, Outgoing};

/// Why the camera could not start.
#[derive(Debug, thiserror::Error)]
pub enum CameraError {
    /// No capture pipeline fits the configuration and the machine.
    #[error("choosing the camera pipeline: {0}")]
    Select(String),
    /// The media worker could not be started or could not build the pipeline.
    #[error("pipeline: {0}")]
    Pipeline(String),
}

/// What the camera needs to know.
#[derive(Debug, Clone)]
pub struct CameraSettings {
    /// The standing broadcast, and the camera's member id.
    pub conversation: String,
    /// Most viewers at once.
    pub max_viewers: usize,
    /// The capture: chosen by the first worker, or a given description.
    pub capture: Capture,
    /// ICE addresses and STUN.
    pub ice: IceSettings,
    /// A peer that has not connected within this time is released.
    pub negotiation_timeout: Duration,
    /// The workers' log filter (RUST_LOG syntax).
    pub log_level: String,
    /// The media program (`peercam-media`), run as `PROGRAM worker`.
    pub program: PathBuf,
    /// The stream's H.264 `profile-level-id`, if known before any stream ran; after that,
    /// as the active worker last reported it.
    pub stream_profile: Option<String>,
}

/// The running camera; stops (the broadcast ends, peers close) when dropped or stopped.
pub struct CameraHandle {
    stats: Arc<CameraStats>,
    primer: Arc<tokio::sync::Notify>,
    chosen: Option<Chosen>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CameraHandle {
    /// Live counts.
    pub fn stats(&self) -> &Arc<CameraStats> {
        &self.stats
    }

    /// Poked when someone opens the page: the spare loads what a session needs.
    pub fn primer(&self) -> Arc<tokio::sync::Notify> {
        self.primer.clone()
    }

    /// What the first worker chose, when it was asked to choose.
    pub fn chosen(&self) -> Option<&Chosen> {
        self.chosen.as_ref()
    }

    /// Ends the broadcast, stops the workers and waits for the camera thread.
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

/// The longest the first worker may take to start (choosing the encoder may run a
/// two-frame trial of each candidate).
const START_LIMIT: Duration = Duration::from_secs(30);

/// Wait before replacing a worker that died or failed to start, doubled for each failure
/// in a row up to [`MAX_RESPAWN_DELAY`]. A worker that lived this long resets it.
const RESPAWN_DELAY: Duration = Duration::from_millis(500);
const MAX_RESPAWN_DELAY: Duration = Duration::from_secs(30);
const HEALTHY_LIFE: Duration = Duration::from_secs(10);

/// While a worker serves, the next spare starts this long after its first peer: not during
/// that viewer's join (its DTLS certificate would compete for the CPU), but in time for the
/// next session after this one ends.
const SPARE_AFTER: Duration = Duration::from_secs(3);

/// A spare primed for a visitor who has not joined within this time is replaced by a fresh
/// one, giving back what priming loaded.
const PRIME_LIFE: Duration = Duration::from_secs(60);
/// Most messages held for peers while no worker can start; the oldest go first beyond it.
const MAX_WAITING: usize = 1024;

/// Starts the camera: a first worker (which chooses or checks the capture), then the
/// camera's member and its standing broadcast. Blocks until the worker is ready.
pub fn start(hub: Arc<Hub>, settings: CameraSettings) -> Result<CameraHandle, CameraError> {
    let (sig_tx, sig_rx) = mpsc::channel(SIGNAL_QUEUE);
    let (stop_tx, stop_rx) = oneshot::channel();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let stats = Arc::new(CameraStats::default());
    let primer = Arc::new(tokio::sync::Notify::new());
    let primed = primer.clone();
    let mut camera = Camera {
        hub: hub.clone(),
        settings: settings.clone(),
        sig_tx: sig_tx.clone(),
        events: None,
        stats: stats.clone(),
        active: None,
        spare: None,
        workers_made: 0,
        respawn_delay: RESPAWN_DELAY,
        respawn_at: None,
        promoted_at: None,
        invited: HashMap::new(),
        invites_made: 0,
        waiting: VecDeque::new(),
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
                    let _ =
                        ready_tx.send(Err(CameraError::Pipeline(format!("camera runtime: {e}"))));
                    return;
                }
            };
            rt.block_on(async move {
                let (ev_tx, mut ev_rx) = mpsc::channel(EVENT_QUEUE);
                camera.events = Some(ev_tx);
                match camera.first_worker(&mut ev_rx).await {
                    Ok(chosen) => {
                        let _ = ready_tx.send(Ok(chosen));
                        camera.run(sig_rx, ev_rx, stop_rx, primed).await;
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                }
            });
        })
        .map_err(|e| CameraError::Pipeline(format!("camera thread: {e}")))?;
    let chosen = match ready_rx.recv() {
        Ok(Ok(chosen)) => chosen,
        Ok(Err(e)) => {
            let _ = thread.join();
            return Err(e);
        }
        Err(_) => {
            let _ = thread.join();
            return Err(CameraError::Pipeline("camera thread ended".into()));
        }
    };
    let handle = CameraHandle {
        stats,
        primer,
        chosen,
        stop: Some(stop_tx),
        thread: Some(thread),
    };
    hub.connect_as(&settings.conversation, Arc::new(DeviceSink(sig_tx)))
        .map_err(|e| CameraError::Pipeline(e.to_string()))?;
    open_broadcast(&hub, &settings);
    Ok(handle)
}

/// Creates the camera's standing broadcast with its viewer limit (its member is connected).
fn open_broadcast(hub: &Hub, settings: &CameraSettings) {
    let me = &settings.conversation;
    hub.handle(
        me,
        Incoming::Create {
            conversation: me.clone(),
            kind: ConversationKind::Broadcast,
        },
    );
    hub.with_core(|c| c.set_viewer_limit(me, Some(settings.max_viewers)));
}

struct Camera {
    hub: Arc<Hub>,
    settings: CameraSettings,
    sig_tx: mpsc::Sender<(String, Outgoing)>,
    /// Where workers report; set once the loop's runtime runs.
    events: Option<mpsc::Sender<(u64, WorkerEvent)>>,
    stats: Arc<CameraStats>,
    /// The worker serving the current peers.
    active: Option<Process>,
    /// The worker ready for the next one.
    spare: Option<Process>,
    workers_made: u64,
    respawn_delay: Duration,
    /// When to try again to start a spare, after a failure.
    respawn_at: Option<Instant>,
    /// When the active worker got its first peer.
    promoted_at: Option<Instant>,
    /// Members the device joined MESH conversations with: member id → conversation.
    invited: HashMap<String, String>,
    /// Invites accepted so far (numbers the invited members' ids).
    invites_made: u64,
    /// Messages for peers that came while no worker could be started (backing off after
    /// failures), oldest first: the next worker serves them.
    waiting: VecDeque<(String, Outgoing)>,
}

impl Camera {
    /// Starts the first worker and waits for it: what it chose, or why it could not start.
    async fn first_worker(
        &mut self,
        events: &mut mpsc::Receiver<(u64, WorkerEvent)>,
    ) -> Result<Option<Chosen>, CameraError> {
        let worker = self
            .spawn(self.settings.capture.clone(), true)
            .map_err(|e| CameraError::Pipeline(format!("starting the media worker: {e}")))?;
        let id = worker.id;
        self.spare = Some(worker);
        self.publish_workers();
        let deadline = tokio::time::sleep(START_LIMIT);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                _ = &mut deadline => {
                    return Err(CameraError::Pipeline(format!(
                        "the media worker did not start within {START_LIMIT:?}"
                    )));
                }
                Some((from, ev)) = events.recv() => match ev {
                    _ if from != id => {}
                    WorkerEvent::Message(FromWorker::Ready { launch, chosen, .. }) => {
                        // Later workers run what this one chose, without probing again.
                        self.settings.capture = Capture::Launch(launch);
                        return Ok(chosen);
                    }
                    WorkerEvent::Message(FromWorker::Failed { selecting: true, error }) => {
                        return Err(CameraError::Select(error));
                    }
                    WorkerEvent::Message(FromWorker::Failed { error, .. }) => {
                        return Err(CameraError::Pipeline(error));
                    }
                    WorkerEvent::Message(_) => {}
                    WorkerEvent::Gone => {
                        let status = match self.spare.take() {
                            Some(w) => w.reap().await,
                            None => "gone".into(),
                        };
                        return Err(CameraError::Pipeline(format!(
                            "the media worker exited before it was ready ({status})"
                        )));
                    }
                }
            }
        }
    }

    fn spawn(&mut self, capture: Capture, validate: bool) -> std::io::Result<Process> {
        self.workers_made += 1;
        let settings = WorkerSettings {
            protocol: peercam_wire::PROTOCOL,
            conversation: self.settings.conversation.clone(),
            capture,
            validate,
            ice: self.settings.ice.clone(),
            negotiation_timeout: self.settings.negotiation_timeout,
            log_level: self.settings.log_level.clone(),
            stream_profile: self.settings.stream_profile.clone(),
        };
        let events = self
            .events
            .clone()
            .ok_or_else(|| std::io::Error::other("camera loop not running"))?;
        let worker = Process::spawn(self.workers_made, &self.settings.program, settings, events)?;
        log::debug!(
            "media worker {} started (pid {:?})",
            worker.id,
            worker.pid()
        );
        Ok(worker)
    }

    fn publish_workers(&self) {
        let pid = |w: &Option<Process>| w.as_ref().and_then(Process::pid).unwrap_or(0);
        self.stats
            .active_worker
            .store(pid(&self.active), Ordering::Relaxed);
        self.stats
            .spare_worker
            .store(pid(&self.spare), Ordering::Relaxed);
    }

    /// Starts a spare unless there is one, a failure asked to wait, or the active worker
    /// began serving less than [`SPARE_AFTER`] ago.
    fn ensure_spare(&mut self) {
        let now = Instant::now();
        if self.spare.is_some()
            || self.respawn_at.is_some_and(|t| now < t)
            || self.promoted_at.is_some_and(|t| now < t + SPARE_AFTER)
        {
            return;
        }
        self.respawn_at = None;
        match self.spawn(self.settings.capture.clone(), false) {
            Ok(w) => self.spare = Some(w),
            Err(e) => {
                log::error!("cannot start a media worker: {e}");
                self.worker_failed();
            }
        }
    }

    /// Backs off before the next spare.
    fn worker_failed(&mut self) {
        self.respawn_at = Some(Instant::now() + self.respawn_delay);
        self.respawn_delay = (self.respawn_delay * 2).min(MAX_RESPAWN_DELAY);
    }

    async fn run(
        &mut self,
        mut signals: mpsc::Receiver<(String, Outgoing)>,
        mut events: mpsc::Receiver<(u64, WorkerEvent)>,
        mut stop: oneshot::Receiver<()>,
        primer: Arc<tokio::sync::Notify>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = primer.notified() => self.prime(),
                Some((member, msg)) = signals.recv() => self.on_signal(&member, msg),
                Some((id, ev)) = events.recv() => self.on_worker(id, ev).await,
                _ = tick.tick() => {
                    self.replace_stale_spare();
                    self.ensure_spare();
                    self.serve_waiting();
                }
            }
            self.publish_workers();
        }
        for member in self.invited.keys().cloned().collect::<Vec<_>>() {
            self.hub.disconnect(&member);
        }
        // The broadcaster leaving tells every viewer `left` and `end`.
        self.hub.disconnect(&self.settings.conversation);
        let workers = [self.active.take(), self.spare.take()];
        futures_util::future::join_all(workers.into_iter().flatten().map(Process::stop)).await;
    }

    /// Someone opens the page: unless a worker is already serving, the spare loads what a
    /// session needs.
    fn prime(&mut self) {
        if self.active.is_some() {
            return;
        }
        if let Some(spare) = self.spare.as_mut() {
            spare.prime();
        }
    }

    /// A spare primed long ago for a visitor who never joined serves as an idle active
    /// worker until a fresh spare is warm, then exits like any idle worker.
    fn replace_stale_spare(&mut self) {
        let stale = self
            .spare
            .as_ref()
            .and_then(|w| w.primed_at)
            .is_some_and(|t| t.elapsed() >= PRIME_LIFE);
        if self.active.is_none() && stale {
            if let Some(mut worker) = self.spare.take() {
                log::debug!("media worker {} primed but unused; replacing it", worker.id);
                worker.idle = true;
                self.active = Some(worker);
                self.promoted_at = None;
            }
        }
    }

    fn on_signal(&mut self, member: &str, msg: Outgoing) {
        match msg {
            Outgoing::Invite { from, conversation } => {
                return self.accept_invite(&from, conversation)
            }
            Outgoing::Created { .. }
            | Outgoing::Joined { .. }
            | Outgoing::NewJoined { .. }
            | Outgoing::Text { .. }
            | Outgoing::NegotiationFailed { .. }
            | Outgoing::Ping => return,
            Outgoing::OfferRequest { .. } | Outgoing::AnswerRequest { .. } => {
                if self.active.is_none() {
                    self.promoted_at = None;
                    self.ensure_spare();
                    self.promote_spare();
                }
            }
            Outgoing::Finalize { .. }
            | Outgoing::Candidate { .. }
            | Outgoing::Left { .. }
            | Outgoing::End { .. }
            | Outgoing::Error { .. } => {}
        }
        match self.active.as_mut() {
            Some(worker) => worker.signal(member, msg),
            None => self.without_worker(member, msg),
        }
    }

    /// A message for a peer while no worker runs (one failed, and the next waits out its
    /// back-off): requests and what follows them wait for the next worker.
    fn without_worker(&mut self, member: &str, msg: Outgoing) {
        match &msg {
            Outgoing::OfferRequest { from } | Outgoing::AnswerRequest { from, .. } => {
                log::warn!(peer = from.as_str(); "no media worker yet; this peer waits for the next");
            }
            Outgoing::Finalize { from, .. } | Outgoing::Candidate { from, .. }
                if self.waiting.iter().any(|w| is_about(w, member, from)) => {}
            Outgoing::Left { from } => {
                // Gone before it was served.
                self.waiting.retain(|w| !is_about(w, member, from));
                if !self.waiting.iter().any(|(m, _)| m == member) {
                    // No worker, so no peer: nothing keeps an invited member in its room.
                    self.release(member);
                }
                return;
            }
            Outgoing::End { .. } | Outgoing::Error { .. } => {
                if let Outgoing::Error { code, message } = &msg {
                    log::warn!(member = member; "signaling error {code}: {message}");
                }
                self.waiting.retain(|(m, _)| m != member);
                self.release(member);
                return;
            }
            _ => return,
        }
        if self.waiting.len() >= MAX_WAITING {
            self.waiting.pop_front();
            log::warn!("too many messages waiting for a media worker; the oldest dropped");
        }
        self.waiting.push_back((member.to_owned(), msg));
    }

    /// The spare, if there is one, becomes the active worker.
    fn promote_spare(&mut self) {
        self.active = self.spare.take();
        self.promoted_at = self.active.as_ref().map(|_| Instant::now());
    }

    /// Hands what waited to a worker, once there is one.
    fn serve_waiting(&mut self) {
        if self.waiting.is_empty() || self.active.is_some() {
            return;
        }
        self.promote_spare();
        if let Some(worker) = self.active.as_mut() {
            log::info!("media worker {} serves the peers that waited", worker.id);
            for (member, msg) in self.waiting.drain(..) {
                worker.signal(&member, msg);
            }
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
            if self.connect(&id).is_ok() {
                break id;
            }
        };
        log::info!(member = member.as_str(); "invited by {from} into {conversation:?}");
        self.invited.insert(member.clone(), conversation.clone());
        self.hub.handle(&member, Incoming::Join { conversation });
    }

    /// Connects one of the device's members, its messages coming to this loop.
    fn connect(&self, id: &str) -> Result<(), IdTaken> {
        self.hub
            .connect_as(id, Arc::new(DeviceSink(self.sig_tx.clone())))
    }

    /// A member the device was invited as, with no peer left, leaves its room.
    fn release(&mut self, member: &str) {
        if self.invited.remove(member).is_some() {
            self.hub.disconnect(member);
        }
    }

    async fn on_worker(&mut self, id: u64, ev: WorkerEvent) {
        let active = self.active.as_ref().is_some_and(|w| w.id == id);
        match ev {
            WorkerEvent::Message(FromWorker::Send { member, msg }) if active => {
                self.hub.handle(&member, msg)
            }
            WorkerEvent::Message(FromWorker::Release { member }) if active => self.release(&member),
            WorkerEvent::Message(FromWorker::Stats { stats, handled }) if active => {
                self.on_stats(&stats, handled)
            }
            WorkerEvent::Message(FromWorker::Stream { profile_level_id }) if active => {
                // Handed to each new worker from now on.
                self.settings.stream_profile = Some(profile_level_id);
            }
            WorkerEvent::Message(FromWorker::Warm) => {
                if let Some(w) = self.spare.as_mut().filter(|w| w.id == id) {
                    w.warm = true;
                    self.retire_if_idle();
                }
            }
            WorkerEvent::Message(FromWorker::Failed { error, .. }) => {
                log::error!("media worker {id} could not start: {error}");
            }
            WorkerEvent::Message(_) => {}
            WorkerEvent::Gone => self.on_gone(id).await,
        }
    }

    fn on_stats(&mut self, stats: &CameraSnapshot, handled: u64) {
        let Some(worker) = self.active.as_mut() else {
            return;
        };
        let new_frames = stats.frames.saturating_sub(worker.frames);
        worker.frames = stats.frames;
        worker.idle = stats.peers == 0 && !stats.capturing;
        worker.handled = handled;
        self.stats.frames.fetch_add(new_frames, Ordering::Relaxed);
        self.stats.set(stats);
        self.retire_if_idle();
    }

    /// Lets an active worker with no peer (and nothing on its way to it) exit, taking
    /// whatever its sessions loaded and allocated with it, once a warm spare can take over.
    fn retire_if_idle(&mut self) {
        let ready = self.spare.as_ref().is_some_and(|w| w.warm);
        // `is_idle` also checks that nothing was sent since its last counts: a viewer may
        // have just been handed to it.
        if !ready || !self.active.as_ref().is_some_and(Process::is_idle) {
            return;
        }
        if let Some(worker) = self.active.take() {
            self.promoted_at = None;
            log::debug!("media worker {} idle; retiring it", worker.id);
            if worker.started.elapsed() >= HEALTHY_LIFE {
                self.respawn_delay = RESPAWN_DELAY;
            }
            tokio::spawn(worker.stop());
        }
    }

    async fn on_gone(&mut self, id: u64) {
        if self.spare.as_ref().is_some_and(|w| w.id == id) {
            if let Some(w) = self.spare.take() {
                let status = w.reap().await;
                log::error!("spare media worker {id} ended ({status})");
            }
            self.worker_failed();
            return;
        }
        let Some(worker) = self.active.take_if(|w| w.id == id) else {
            return;
        };
        self.promoted_at = None;
        let young = worker.started.elapsed() < HEALTHY_LIFE;
        let status = worker.reap().await;
        log::error!(
            "media worker {id} ended unexpectedly ({status}); ending the broadcast so viewers \
             rejoin"
        );
        self.stats.set(&CameraSnapshot {
            peers: 0,
            branches: 0,
            connected: 0,
            frames: 0,
            capturing: false,
        });
        for member in self.invited.keys().cloned().collect::<Vec<_>>() {
            self.release(&member);
        }
        // Viewers get `left` and `end` (the page rejoins); the broadcast opens again at once.
        let me = &self.settings.conversation;
        self.hub.disconnect(me);
        if let Err(e) = self.connect(me) {
            log::error!("cannot reopen the camera's conversation: {e}");
        } else {
            open_broadcast(&self.hub, &self.settings);
        }
        if young {
            self.worker_failed();
        } else {
            self.respawn_delay = RESPAWN_DELAY;
        }
        self.ensure_spare();
    }
}

/// Whether a waiting message is for device member `member` about peer `peer`.
fn is_about((m, msg): &(String, Outgoing), member: &str, peer: &str) -> bool {
    m == member && peer_of(msg) == Some(peer)
}

/// The peer a message to a device member is about.
fn peer_of(msg: &Outgoing) -> Option<&str> {
    match msg {
        Outgoing::OfferRequest { from }
        | Outgoing::AnswerRequest { from, .. }
        | Outgoing::Finalize { from, .. }
        | Outgoing::Candidate { from, .. }
        | Outgoing::Left { from } => Some(from),
        _ => None,
    }
}
