//! The camera loop: gathers what happens (messages from the hub for the device's members,
//! the workers' messages and exits, page visits, requests for a still picture, the policy's
//! deadlines, the stop) into [`Event`]s for the policy (policy.rs), and carries out the
//! [`Action`]s it returns: worker processes (process.rs), the hub, the live counts, the
//! answers to those who asked for a picture. It owns the device's members in the MESH rooms
//! it is invited into. It decides nothing about workers. The WHEP door's requests and the
//! WHIP publisher's outcomes and deadlines come in here too, and what their peers must tell
//! the worker goes to the policy as signals to the camera's member.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{mpsc, oneshot};

use peercam_wire::{Chosen, WorkerSettings};

use super::events::{Action, Event, NotStarted};
use super::policy::{Supervisor, START_LIMIT};
use super::process::{Process, WorkerEvent};
use super::publish::Publishing;
use super::whep::Sessions;
use super::{CameraError, CameraSettings, CameraStats, SnapshotRequest, EVENT_QUEUE};
use crate::publish::policy::Event as PublishEvent;
use crate::signaling::hub::{IdTaken, MemberSink, Overflow};
use crate::signaling::{ConversationKind, Hub, Incoming, Outgoing};
use crate::whep::DoorRequest;

/// Where the first worker's outcome goes: what it chose, or why the camera cannot start.
pub(super) type Ready = std::sync::mpsc::Sender<Result<Option<Chosen>, CameraError>>;

/// Queues messages for one of the device's members into the camera loop.
pub(super) struct DeviceSink(pub(super) mpsc::Sender<(String, Outgoing)>);

impl MemberSink for DeviceSink {
    fn deliver(&self, to: &str, msg: &Outgoing) -> Result<(), Overflow> {
        self.0
            .try_send((to.to_owned(), msg.clone()))
            .map_err(|_| Overflow)
    }
}

/// Creates the camera's standing broadcast with its viewer limit (its member is connected).
pub(super) fn open_broadcast(hub: &Hub, settings: &CameraSettings) {
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

/// What the loop's inputs are.
pub(super) struct Inputs {
    /// Messages from the hub for the device's members.
    pub signals: mpsc::Receiver<(String, Outgoing)>,
    /// Resolves (sent or dropped) when the camera stops.
    pub stop: oneshot::Receiver<()>,
    /// Poked when someone opens the page.
    pub primer: Arc<tokio::sync::Notify>,
    /// Where the first worker's outcome goes.
    pub ready: Ready,
    /// Requests from the WHEP door.
    pub whep: mpsc::Receiver<DoorRequest>,
    /// Requests for a still picture.
    pub snapshots: mpsc::Receiver<SnapshotRequest>,
}

/// The I/O side of the camera: everything the policy's actions touch.
pub(super) struct Camera {
    /// The hub the device's members are connected to.
    hub: Arc<Hub>,
    /// The camera's conversation, viewer limit, and what its workers run.
    settings: CameraSettings,
    /// The sender each of the device's members' sinks clones.
    sig_tx: mpsc::Sender<(String, Outgoing)>,
    /// Where workers report.
    events: mpsc::Sender<(u64, WorkerEvent)>,
    /// The live counts.
    stats: Arc<CameraStats>,
    /// The running worker processes, by number.
    workers: HashMap<u64, Process>,
    /// Members the device joined MESH conversations with: member id → conversation.
    invited: HashMap<String, String>,
    /// Invites accepted so far (numbers the invited members' ids).
    invites_made: u64,
    /// While the camera stops: the workers told to stop, waited for before the loop ends.
    stopping: Option<Vec<Process>>,
    /// Until the first worker is ready or has failed: where that goes.
    ready: Option<Ready>,
    /// The WHEP door's sessions.
    whep: Sessions,
    /// The WHIP publisher, when the device publishes.
    publishing: Option<Publishing>,
    /// What carrying out the last actions brought up for the policy, handled before the
    /// loop waits again.
    followups: Vec<Event>,
    /// Where the answer to each picture asked for and not yet answered goes, by number.
    pictures: HashMap<u64, super::SnapshotReply>,
    /// Pictures asked for so far (numbers them).
    pictures_asked: u64,
}

impl Camera {
    /// Runs the camera until it stops, or until its first worker fails to start.
    pub(super) async fn run(
        hub: Arc<Hub>,
        settings: CameraSettings,
        sig_tx: mpsc::Sender<(String, Outgoing)>,
        stats: Arc<CameraStats>,
        inputs: Inputs,
    ) {
        let Inputs {
            mut signals,
            mut stop,
            primer,
            ready,
            mut whep,
            mut snapshots,
        } = inputs;
        let (ev_tx, mut events) = mpsc::channel(EVENT_QUEUE);
        let (publishing, mut published) = match settings.publish.clone() {
            Some(target) => {
                let (p, rx) = Publishing::new(target, stats.clone(), Instant::now());
                (Some(p), Some(rx))
            }
            None => (None, None),
        };
        let mut camera = Camera {
            hub,
            settings,
            sig_tx,
            events: ev_tx,
            stats,
            workers: HashMap::new(),
            invited: HashMap::new(),
            invites_made: 0,
            stopping: None,
            ready: Some(ready),
            whep: Sessions::default(),
            publishing,
            followups: Vec::new(),
            pictures: HashMap::new(),
            pictures_asked: 0,
        };
        let (mut policy, mut actions) = Supervisor::new(camera.worker_settings(), Instant::now());
        loop {
            camera.carry_out(&mut policy, actions).await;
            camera.publish_workers(&policy);
            if policy.ended() {
                break;
            }
            let events = if camera.followups.is_empty() {
                let deadline = policy.next_deadline();
                let publish_deadline = camera
                    .publishing
                    .as_ref()
                    .and_then(Publishing::next_deadline);
                tokio::select! {
                    _ = &mut stop => vec![Event::Stop],
                    _ = primer.notified() => vec![Event::Prime],
                    Some((member, msg)) = signals.recv() => vec![Event::Signal { member, msg }],
                    Some((worker, ev)) = events.recv() => vec![match ev {
                        WorkerEvent::Message(msg) => Event::Worker { worker, msg },
                        WorkerEvent::Gone => Event::Gone { worker },
                    }],
                    Some(request) = whep.recv() => camera.whep_request(request),
                    Some(request) = snapshots.recv() => vec![camera.picture_asked(request)],
                    Some(event) = recv_some(&mut published) => camera.publish(event),
                    _ = sleep_until(publish_deadline) => camera.publish(PublishEvent::Tick),
                    _ = sleep_until(deadline) => vec![Event::Tick],
                }
            } else {
                std::mem::take(&mut camera.followups)
            };
            let now = Instant::now();
            actions = events
                .into_iter()
                .flat_map(|event| policy.handle(now, event))
                .collect();
        }
        let stopping = camera.stopping.take().unwrap_or_default();
        let unpublished = camera.publishing.as_mut().map(|p| p.stop(Instant::now()));
        futures_util::future::join(
            futures_util::future::join_all(stopping.into_iter().map(Process::stop)),
            futures_util::future::OptionFuture::from(unpublished),
        )
        .await;
    }

    /// What the first worker starts with (later ones are given the same): among it, the
    /// DTLS certificate every worker's peers present, made here once.
    fn worker_settings(&self) -> WorkerSettings {
        let s = &self.settings;
        let t = Instant::now();
        let dtls = match super::dtls::generate() {
            Ok(identity) => {
                log::debug!("DTLS certificate made in {:?}", t.elapsed());
                Some(identity)
            }
            Err(e) => {
                log::warn!("{e}; the media workers make their own");
                None
            }
        };
        WorkerSettings {
            protocol: peercam_wire::PROTOCOL,
            conversation: s.conversation.clone(),
            capture: s.capture.clone(),
            validate: true,
            ice: s.ice.clone(),
            negotiation_timeout: s.negotiation_timeout,
            log_level: s.log_level.clone(),
            stream_profile: s.stream_profile.clone(),
            dtls,
            audio: s.audio.clone(),
            talkback: s.talkback.clone(),
        }
    }

    /// Carries out `actions`, then tells the policy how the spawns went (and carries out
    /// what that brings).
    async fn carry_out(&mut self, policy: &mut Supervisor, mut actions: Vec<Action>) {
        loop {
            let mut outcomes = Vec::new();
            for action in actions {
                if let Some(outcome) = self.act(action).await {
                    outcomes.push(outcome);
                }
            }
            if outcomes.is_empty() {
                return;
            }
            let now = Instant::now();
            actions = outcomes
                .into_iter()
                .flat_map(|event| policy.handle(now, event))
                .collect();
        }
    }

    /// Carries out one action; a spawn's outcome comes back.
    async fn act(&mut self, action: Action) -> Option<Event> {
        match action {
            Action::Spawn { worker, settings } => return Some(self.spawn(worker, *settings)),
            Action::Signal {
                worker,
                member,
                msg,
            } => {
                // A worker that could not be started is missing: the policy keeps what it
                // was sent.
                if let Some(w) = self.workers.get(&worker) {
                    w.signal(&member, msg);
                }
            }
            Action::Snapshot { worker, id, spec } => {
                // A worker that could not be started is missing: the policy answers for it.
                if let Some(w) = self.workers.get(&worker) {
                    w.snapshot(id, spec);
                }
            }
            Action::Snapshotted { id, result } => {
                if let Some(reply) = self.pictures.remove(&id) {
                    // Whoever asked may have given up waiting.
                    let _ = reply.send(result.map(|jpeg| jpeg.0));
                }
            }
            Action::Prime { worker } => {
                if let Some(w) = self.workers.get(&worker) {
                    w.prime();
                }
            }
            Action::Stop { worker } => {
                if let Some(w) = self.workers.remove(&worker) {
                    match self.stopping.as_mut() {
                        Some(stopping) => stopping.push(w),
                        None => {
                            tokio::spawn(w.stop());
                        }
                    }
                }
            }
            Action::Reap { worker, spare } => {
                let status = self.reap(worker).await;
                if spare {
                    log::error!("spare media worker {worker} ended ({status})");
                } else {
                    log::error!(
                        "media worker {worker} ended unexpectedly ({status}); ending the \
                         broadcast so viewers rejoin"
                    );
                }
            }
            Action::Deliver { member, msg } => {
                let msg = match self.publishing.as_mut() {
                    Some(p) => match p.deliver(Instant::now(), msg) {
                        Ok(steps) => {
                            let events = self.signals_of(steps);
                            self.followups.extend(events);
                            return None;
                        }
                        Err(msg) => msg,
                    },
                    None => msg,
                };
                let mut steps = Vec::new();
                let passed = self.whep.deliver(msg, &mut steps);
                self.whep_steps(steps);
                if let Some(msg) = passed {
                    self.hub.handle(&member, msg);
                }
            }
            Action::Release { member } => self.release(&member),
            Action::AcceptInvite { from, conversation } => self.accept_invite(&from, conversation),
            Action::Counts { counts, new_frames } => {
                self.stats.frames.fetch_add(new_frames, Ordering::Relaxed);
                self.stats.set(&counts);
            }
            Action::EndBroadcast => self.end_broadcast(),
            Action::Started { chosen } => {
                if let Some(ready) = self.ready.take() {
                    let _ = ready.send(Ok(chosen));
                }
                let events = self.publish(PublishEvent::Begin);
                self.followups.extend(events);
            }
            Action::NotStarted(why) => {
                let error = self.not_started(why).await;
                if let Some(ready) = self.ready.take() {
                    let _ = ready.send(Err(error));
                }
            }
            Action::Close => {
                self.whep.end_all("the camera is stopping");
                self.whep_count();
                self.stopping = Some(Vec::new());
                for member in self.invited.keys() {
                    self.hub.disconnect(member);
                }
                // The broadcaster leaving tells every viewer `left` and `end`.
                self.hub.disconnect(&self.settings.conversation);
            }
        }
        None
    }

    /// Numbers a request for a picture and keeps where its answer goes. Every picture asked
    /// for is answered (the policy sees to it), so the map holds only those in flight; those
    /// whose asker has gone are let go at once all the same.
    fn picture_asked(&mut self, request: SnapshotRequest) -> Event {
        self.pictures.retain(|_, reply| !reply.is_closed());
        self.pictures_asked += 1;
        let id = self.pictures_asked;
        self.pictures.insert(id, request.reply);
        Event::Snapshot {
            id,
            spec: request.spec,
        }
    }

    fn spawn(&mut self, worker: u64, settings: WorkerSettings) -> Event {
        let program = &self.settings.program;
        match Process::spawn(worker, program, settings, self.events.clone()) {
            Ok(process) => {
                log::debug!("media worker {worker} started (pid {:?})", process.pid());
                self.workers.insert(worker, process);
                Event::Spawned { worker }
            }
            Err(e) => Event::SpawnFailed {
                worker,
                error: e.to_string(),
            },
        }
    }

    /// The exit status of a worker whose socket closed, for the log.
    async fn reap(&mut self, worker: u64) -> String {
        match self.workers.remove(&worker) {
            Some(w) => w.reap().await,
            None => "gone".into(),
        }
    }

    async fn not_started(&mut self, why: NotStarted) -> CameraError {
        match why {
            NotStarted::Spawn(e) => {
                CameraError::Pipeline(format!("starting the media worker: {e}"))
            }
            NotStarted::Select(e) => CameraError::Select(e),
            NotStarted::Failed(e) => CameraError::Pipeline(e),
            NotStarted::Exited { worker } => {
                let status = self.reap(worker).await;
                CameraError::Pipeline(format!(
                    "the media worker exited before it was ready ({status})"
                ))
            }
            NotStarted::TimedOut => CameraError::Pipeline(format!(
                "the media worker did not start within {START_LIMIT:?}"
            )),
        }
    }

    fn publish_workers(&self, policy: &Supervisor) {
        let pid = |w: Option<u64>| {
            w.and_then(|w| self.workers.get(&w))
                .and_then(Process::pid)
                .unwrap_or(0)
        };
        self.stats
            .active_worker
            .store(pid(policy.active()), Ordering::Relaxed);
        self.stats
            .spare_worker
            .store(pid(policy.spare()), Ordering::Relaxed);
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

    /// A request from the WHEP door: what the policy must handle for it.
    fn whep_request(&mut self, request: DoorRequest) -> Vec<Event> {
        let me = &self.settings.conversation;
        let room = self
            .hub
            .with_core(|c| match (c.viewers_of(me), c.viewer_limit_of(me)) {
                (Some(viewers), Some(limit)) if viewers >= limit => Err(limit),
                _ => Ok(()),
            });
        let steps = self.whep.take(request, room);
        self.whep_count();
        self.signals_of(steps)
    }

    /// Messages for the camera's member from WHEP sessions' peers, handled after the actions
    /// being carried out.
    fn whep_steps(&mut self, steps: Vec<Outgoing>) {
        self.whep_count();
        let events = self.signals_of(steps);
        self.followups.extend(events);
    }

    /// `msgs` as signals to the camera's own member.
    fn signals_of(&self, msgs: Vec<Outgoing>) -> Vec<Event> {
        msgs.into_iter()
            .map(|msg| Event::Signal {
                member: self.settings.conversation.clone(),
                msg,
            })
            .collect()
    }

    /// Publishes the number of WHEP sessions: to the hub (they count against the viewer
    /// limit) and to the live counts.
    fn whep_count(&self) {
        let n = self.whep.len();
        let me = &self.settings.conversation;
        self.hub.with_core(|c| c.set_viewers_elsewhere(me, n));
        self.stats.whep_viewers.store(n, Ordering::Relaxed);
    }

    /// Takes in what happened to the WHIP publisher; what the policy must handle for it (the
    /// publisher's peer's messages to the camera's member).
    fn publish(&mut self, event: PublishEvent) -> Vec<Event> {
        let steps = match self.publishing.as_mut() {
            Some(p) => p.handle(Instant::now(), event),
            None => Vec::new(),
        };
        self.signals_of(steps)
    }

    /// The active worker died: the rooms end, and the broadcast ends and opens again.
    fn end_broadcast(&mut self) {
        // The publisher's peer went with the worker: it publishes again through the next one.
        let events = self.publish(PublishEvent::WorkerGone);
        self.followups.extend(events);
        self.whep
            .end_all("the camera's media worker restarted; post the offer again");
        self.whep_count();
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
        self.whep_count();
    }
}

/// The next item from `rx`; never, without one.
async fn recv_some<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Waits until `deadline`; forever without one.
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}
