//! The supervisor's policy: which media worker is the spare and which the active one; when a
//! worker is started, primed, promoted, retired or replaced; how long to wait after failures;
//! which peers wait while no worker can take them; what a worker's death ends; which worker
//! takes a still picture (snapshots.rs).
//!
//! Pure: the loop (run.rs) passes in what it observed ([`Event`]) with the time it observed
//! it, and carries out the [`Action`]s it gets back. Nothing here reads the clock, starts a
//! process, touches the hub or a socket, or waits; [`Supervisor::next_deadline`] says when
//! the loop must come back with [`Event::Tick`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use peercam_wire::{CameraSnapshot, Capture, FromWorker, WorkerSettings};

pub use super::events::{Action, Event, NotStarted};
use crate::signaling::{Incoming, Outgoing, TalkState};

mod snapshots;
#[cfg(test)]
mod tests;

/// The longest the first worker may take to start (choosing the encoder may run a
/// two-frame trial of each candidate).
pub const START_LIMIT: Duration = Duration::from_secs(30);

/// Wait before replacing a worker that died or failed to start, doubled for each failure
/// in a row up to [`MAX_RESPAWN_DELAY`]. A worker that lived [`HEALTHY_LIFE`] resets it.
pub const RESPAWN_DELAY: Duration = Duration::from_millis(500);
/// The longest wait before replacing a worker that died or failed to start.
pub const MAX_RESPAWN_DELAY: Duration = Duration::from_secs(30);
/// A worker that lived this long before it ended was healthy: the wait starts over.
pub const HEALTHY_LIFE: Duration = Duration::from_secs(10);

/// While a worker serves, the next spare starts this long after its first peer: not during
/// that viewer's join (its DTLS certificate would compete for the CPU), but in time for the
/// next session after this one ends.
pub const SPARE_AFTER: Duration = Duration::from_secs(3);

/// A spare primed for a visitor who has not joined within this time is replaced by a fresh
/// one, giving back what priming loaded.
pub const PRIME_LIFE: Duration = Duration::from_secs(60);
/// Most messages held for peers while no worker can start; the oldest go first beyond it.
pub const MAX_WAITING: usize = 1024;

/// Where the camera is in its life.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    /// Waiting for the first worker, which chooses or checks the capture.
    Starting {
        /// The first worker's number.
        first: u64,
        /// When it has taken too long.
        deadline: Instant,
    },
    /// Serving.
    Running,
    /// Stopped, or never started: nothing more to do.
    Ended,
}

/// One worker as the policy sees it.
#[derive(Debug)]
struct Worker {
    /// Its number in this device's life (tags its events and actions).
    id: u64,
    /// When it was started.
    started: Instant,
    /// `Signal` messages sent to it.
    sent: u64,
    /// Encoded frames it had reported (the device's count adds the difference).
    frames: u64,
    /// It has said `Warm`.
    warm: bool,
    /// Its last counts showed no peer and no capture.
    idle: bool,
    /// `Signal` messages it had handled at its last counts.
    handled: u64,
    /// When it was asked to prime.
    primed_at: Option<Instant>,
    /// Until its process is known to run, what was sent to it: if it could not be started,
    /// these wait for the next worker.
    unconfirmed: Option<Vec<(String, Outgoing)>>,
    /// Still pictures it was asked for and has not answered, by request number (counted in
    /// `sent` too).
    pictures: Vec<u64>,
}

impl Worker {
    fn new(id: u64, now: Instant) -> Worker {
        Worker {
            id,
            started: now,
            sent: 0,
            frames: 0,
            warm: false,
            idle: false,
            handled: 0,
            primed_at: None,
            unconfirmed: Some(Vec::new()),
            pictures: Vec::new(),
        }
    }

    /// Nothing to serve: no peer, no capture, and every message sent to it handled.
    fn is_idle(&self) -> bool {
        self.idle && self.handled == self.sent
    }

    /// Passes on a message for device member `member`.
    fn signal(&mut self, out: &mut Vec<Action>, member: String, msg: Outgoing) {
        self.sent += 1;
        if let Some(unconfirmed) = self.unconfirmed.as_mut() {
            unconfirmed.push((member.clone(), msg.clone()));
        }
        out.push(Action::Signal {
            worker: self.id,
            member,
            msg,
        });
    }
}

/// The supervisor of the media workers: see the module comment of `camera`.
#[derive(Debug)]
pub struct Supervisor {
    /// What the next worker starts with: the capture the first one chose, and the stream
    /// profile the active worker last reported.
    settings: WorkerSettings,
    /// Where the camera is in its life.
    phase: Phase,
    /// The worker serving the current peers.
    active: Option<Worker>,
    /// The worker ready for the next one.
    spare: Option<Worker>,
    /// Workers started so far (numbers them).
    workers_made: u64,
    /// The wait after the next failure.
    respawn_delay: Duration,
    /// When to try again to start a spare, after a failure.
    respawn_at: Option<Instant>,
    /// When the active worker got its first peer.
    promoted_at: Option<Instant>,
    /// Messages for peers that came while no worker could be started (backing off after
    /// failures), oldest first: the next worker serves them.
    waiting: VecDeque<(String, Outgoing)>,
    /// The time of the latest event: "at once" for [`Supervisor::next_deadline`].
    now: Instant,
    /// Actions of the event being handled.
    out: Vec<Action>,
}

impl Supervisor {
    /// A supervisor starting its first worker with `settings` (which chooses or checks the
    /// capture); the actions start it.
    pub fn new(settings: WorkerSettings, now: Instant) -> (Supervisor, Vec<Action>) {
        let mut sup = Supervisor {
            settings,
            phase: Phase::Ended,
            active: None,
            spare: None,
            workers_made: 0,
            respawn_delay: RESPAWN_DELAY,
            respawn_at: None,
            promoted_at: None,
            waiting: VecDeque::new(),
            now,
            out: Vec::new(),
        };
        let first = sup.spawn(now, true);
        sup.spare = Some(first);
        sup.phase = Phase::Starting {
            first: sup.workers_made,
            deadline: now + START_LIMIT,
        };
        let actions = std::mem::take(&mut sup.out);
        (sup, actions)
    }

    /// The worker serving peers, if any.
    pub fn active(&self) -> Option<u64> {
        self.active.as_ref().map(|w| w.id)
    }

    /// The spare worker, if any.
    pub fn spare(&self) -> Option<u64> {
        self.spare.as_ref().map(|w| w.id)
    }

    /// Stopped, or never started: the loop ends.
    pub fn ended(&self) -> bool {
        self.phase == Phase::Ended
    }

    /// When the loop must pass [`Event::Tick`] at the latest (now, if the instant is past);
    /// `None`: only other events matter.
    pub fn next_deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Ended => None,
            Phase::Starting { deadline, .. } => Some(deadline),
            Phase::Running => {
                let mut due = Vec::new();
                if self.active.is_none() {
                    if let Some(primed) = self.spare.as_ref().and_then(|w| w.primed_at) {
                        due.push(primed + PRIME_LIFE);
                    }
                    if self.spare.is_some() && !self.waiting.is_empty() {
                        due.push(self.now);
                    }
                }
                if self.spare.is_none() {
                    let after_failure = self.respawn_at.unwrap_or(self.now);
                    let after_promotion = self.promoted_at.map_or(self.now, |t| t + SPARE_AFTER);
                    due.push(after_failure.max(after_promotion));
                }
                due.into_iter().min()
            }
        }
    }

    /// Takes in what the loop observed at `now`; returns what it must do, in order.
    pub fn handle(&mut self, now: Instant, event: Event) -> Vec<Action> {
        self.now = now;
        match (self.phase, event) {
            (Phase::Ended, _) => {}
            (_, Event::Spawned { worker }) => self.spawned(worker),
            (_, Event::SpawnFailed { worker, error }) => self.spawn_failed(now, worker, &error),
            (_, Event::Stop) => self.stop(),
            (Phase::Starting { first, deadline }, event) => match event {
                Event::Worker { worker, msg } if worker == first => self.first_message(msg),
                Event::Gone { worker } if worker == first => {
                    self.spare = None;
                    self.not_started(NotStarted::Exited { worker });
                }
                Event::Tick if now >= deadline => self.not_started(NotStarted::TimedOut),
                Event::Snapshot { id, .. } => self.refuse_picture(id, snapshots::STARTING),
                // The device's members connect, and the page can prime, only once the first
                // worker is ready.
                _ => {}
            },
            (Phase::Running, event) => match event {
                Event::Signal { member, msg } => self.on_signal(now, member, msg),
                Event::Worker { worker, msg } => self.on_worker(now, worker, msg),
                Event::Gone { worker } => self.on_gone(now, worker),
                Event::Prime => self.prime(now),
                Event::Snapshot { id, spec } => self.on_snapshot(now, id, spec),
                Event::Tick => {
                    self.replace_stale_spare(now);
                    self.ensure_spare(now);
                    self.serve_waiting(now);
                }
                Event::Spawned { .. } | Event::SpawnFailed { .. } | Event::Stop => {}
            },
        }
        std::mem::take(&mut self.out)
    }

    /// A worker numbered and settled; the action that starts it is queued.
    fn spawn(&mut self, now: Instant, validate: bool) -> Worker {
        self.workers_made += 1;
        let settings = WorkerSettings {
            validate,
            ..self.settings.clone()
        };
        self.out.push(Action::Spawn {
            worker: self.workers_made,
            settings: Box::new(settings),
        });
        Worker::new(self.workers_made, now)
    }

    fn not_started(&mut self, why: NotStarted) {
        self.phase = Phase::Ended;
        self.out.push(Action::NotStarted(why));
    }

    /// The first worker's messages, until it is ready.
    fn first_message(&mut self, msg: FromWorker) {
        match msg {
            FromWorker::Ready { launch, chosen, .. } => {
                // Later workers run what this one chose, without probing again.
                self.settings.capture = Capture::Launch(launch);
                self.phase = Phase::Running;
                self.out.push(Action::Started { chosen });
            }
            FromWorker::Failed {
                selecting: true,
                error,
            } => self.not_started(NotStarted::Select(error)),
            FromWorker::Failed { error, .. } => self.not_started(NotStarted::Failed(error)),
            _ => {}
        }
    }

    fn spawned(&mut self, id: u64) {
        for worker in [self.active.as_mut(), self.spare.as_mut()]
            .into_iter()
            .flatten()
        {
            if worker.id == id {
                worker.unconfirmed = None;
            }
        }
    }

    fn spawn_failed(&mut self, now: Instant, id: u64, error: &str) {
        if let Phase::Starting { first, .. } = self.phase {
            if first == id {
                self.spare = None;
                return self.not_started(NotStarted::Spawn(error.to_owned()));
            }
        }
        log::error!("cannot start a media worker: {error}");
        if self.spare.take_if(|w| w.id == id).is_some() {
            self.worker_failed(now);
        } else if let Some(worker) = self.active.take_if(|w| w.id == id) {
            // Promoted as it was being started: what it was sent waits for the next one, but
            // a picture is wanted now.
            self.promoted_at = None;
            self.worker_failed(now);
            self.refuse_pictures(&worker, snapshots::WORKER_FAILED);
            for (member, msg) in worker.unconfirmed.unwrap_or_default() {
                self.without_worker(member, msg);
            }
        }
    }

    /// Starts a spare unless there is one, a failure asked to wait, or the active worker
    /// began serving less than [`SPARE_AFTER`] ago.
    fn ensure_spare(&mut self, now: Instant) {
        if self.spare.is_some()
            || self.respawn_at.is_some_and(|t| now < t)
            || self.promoted_at.is_some_and(|t| now < t + SPARE_AFTER)
        {
            return;
        }
        self.respawn_at = None;
        let spare = self.spawn(now, false);
        self.spare = Some(spare);
    }

    /// Backs off before the next spare.
    fn worker_failed(&mut self, now: Instant) {
        self.respawn_at = Some(now + self.respawn_delay);
        self.respawn_delay = (self.respawn_delay * 2).min(MAX_RESPAWN_DELAY);
    }

    fn stop(&mut self) {
        self.phase = Phase::Ended;
        self.out.push(Action::Close);
        for worker in [self.active.take(), self.spare.take()]
            .into_iter()
            .flatten()
        {
            self.refuse_pictures(&worker, snapshots::STOPPING);
            self.out.push(Action::Stop { worker: worker.id });
        }
    }

    /// Someone opens the page: unless a worker is already serving, the spare loads what a
    /// session needs (once).
    fn prime(&mut self, now: Instant) {
        if self.active.is_some() {
            return;
        }
        if let Some(spare) = self.spare.as_mut().filter(|w| w.primed_at.is_none()) {
            spare.primed_at = Some(now);
            self.out.push(Action::Prime { worker: spare.id });
        }
    }

    /// A spare primed long ago for a visitor who never joined serves as an idle active
    /// worker until a fresh spare is warm, then exits like any idle worker.
    fn replace_stale_spare(&mut self, now: Instant) {
        let stale = self
            .spare
            .as_ref()
            .and_then(|w| w.primed_at)
            .is_some_and(|t| now.saturating_duration_since(t) >= PRIME_LIFE);
        if self.active.is_none() && stale {
            if let Some(mut worker) = self.spare.take() {
                log::debug!("media worker {} primed but unused; replacing it", worker.id);
                worker.idle = true;
                self.active = Some(worker);
                self.promoted_at = None;
            }
        }
    }

    fn on_signal(&mut self, now: Instant, member: String, msg: Outgoing) {
        match msg {
            Outgoing::Invite { from, conversation } => {
                return self.out.push(Action::AcceptInvite { from, conversation });
            }
            Outgoing::Created { .. }
            | Outgoing::Joined { .. }
            | Outgoing::NewJoined { .. }
            | Outgoing::Text { .. }
            | Outgoing::NegotiationFailed { .. }
            | Outgoing::TalkState { .. }
            | Outgoing::Ping => return,
            Outgoing::OfferRequest { .. } | Outgoing::AnswerRequest { .. } => {
                self.ensure_active(now);
            }
            Outgoing::Talk { from, start } if self.active.is_none() => {
                // No worker, so no connection to this viewer to hear it on.
                if start {
                    self.out.push(Action::Deliver {
                        member,
                        msg: Incoming::TalkState {
                            to: from,
                            state: TalkState::Unavailable,
                            message: "the camera is not connected to you yet; try again once \
                                      its video plays"
                                .into(),
                        },
                    });
                }
                return;
            }
            Outgoing::Talk { .. } => {}
            Outgoing::Finalize { .. }
            | Outgoing::Candidate { .. }
            | Outgoing::Left { .. }
            | Outgoing::End { .. }
            | Outgoing::Error { .. } => {}
        }
        match self.active.as_mut() {
            Some(worker) => worker.signal(&mut self.out, member, msg),
            None => self.without_worker(member, msg),
        }
    }

    /// A message for a peer while no worker runs (one failed, and the next waits out its
    /// back-off): requests and what follows them wait for the next worker.
    fn without_worker(&mut self, member: String, msg: Outgoing) {
        match &msg {
            Outgoing::OfferRequest { from } | Outgoing::AnswerRequest { from, .. } => {
                log::warn!(peer = from.as_str(); "no media worker yet; this peer waits for the next");
            }
            Outgoing::Finalize { from, .. } | Outgoing::Candidate { from, .. }
                if self.waiting.iter().any(|w| is_about(w, &member, from)) => {}
            Outgoing::Left { from } => {
                // Gone before it was served.
                self.waiting.retain(|w| !is_about(w, &member, from));
                if !self.waiting.iter().any(|(m, _)| *m == member) {
                    // No worker, so no peer: nothing keeps an invited member in its room.
                    self.out.push(Action::Release { member });
                }
                return;
            }
            Outgoing::End { .. } | Outgoing::Error { .. } => {
                if let Outgoing::Error { code, message } = &msg {
                    log::warn!(member = member.as_str(); "signaling error {code}: {message}");
                }
                self.waiting.retain(|(m, _)| *m != member);
                self.out.push(Action::Release { member });
                return;
            }
            _ => return,
        }
        if self.waiting.len() >= MAX_WAITING {
            self.waiting.pop_front();
            log::warn!("too many messages waiting for a media worker; the oldest dropped");
        }
        self.waiting.push_back((member, msg));
    }

    /// A request needs a worker: unless one is active, the spare (started now if there is
    /// none and no failure asks to wait) becomes the active worker.
    fn ensure_active(&mut self, now: Instant) {
        if self.active.is_none() {
            self.promoted_at = None;
            self.ensure_spare(now);
            self.promote_spare(now);
        }
    }

    /// The spare, if there is one, becomes the active worker.
    fn promote_spare(&mut self, now: Instant) {
        self.active = self.spare.take();
        self.promoted_at = self.active.as_ref().map(|_| now);
    }

    /// Hands what waited to a worker, once there is one.
    fn serve_waiting(&mut self, now: Instant) {
        if self.waiting.is_empty() || self.active.is_some() {
            return;
        }
        self.promote_spare(now);
        if let Some(worker) = self.active.as_mut() {
            log::info!("media worker {} serves the peers that waited", worker.id);
            for (member, msg) in self.waiting.drain(..) {
                worker.signal(&mut self.out, member, msg);
            }
        }
    }

    fn on_worker(&mut self, now: Instant, id: u64, msg: FromWorker) {
        let active = self.active.as_ref().is_some_and(|w| w.id == id);
        match msg {
            FromWorker::Send { member, msg } if active => {
                self.out.push(Action::Deliver { member, msg });
            }
            FromWorker::Release { member } if active => self.out.push(Action::Release { member }),
            FromWorker::Stats { stats, handled } if active => self.on_stats(now, stats, handled),
            FromWorker::Snapshot {
                id: picture,
                result,
            } if active => {
                self.on_picture(picture, result);
            }
            FromWorker::Stream { profile_level_id } if active => {
                // Handed to each new worker from now on.
                self.settings.stream_profile = Some(profile_level_id);
            }
            FromWorker::Warm => {
                if let Some(w) = self.spare.as_mut().filter(|w| w.id == id) {
                    w.warm = true;
                    self.retire_if_idle(now);
                }
            }
            FromWorker::Failed { error, .. } => {
                log::error!("media worker {id} could not start: {error}");
            }
            _ => {}
        }
    }

    fn on_stats(&mut self, now: Instant, stats: CameraSnapshot, handled: u64) {
        let Some(worker) = self.active.as_mut() else {
            return;
        };
        let new_frames = stats.frames.saturating_sub(worker.frames);
        worker.frames = stats.frames;
        worker.idle = stats.peers == 0 && !stats.capturing;
        worker.handled = handled;
        self.out.push(Action::Counts {
            counts: stats,
            new_frames,
        });
        self.retire_if_idle(now);
    }

    /// Lets an active worker with no peer (and nothing on its way to it) exit, taking
    /// whatever its sessions loaded and allocated with it, once a warm spare can take over.
    fn retire_if_idle(&mut self, now: Instant) {
        let ready = self.spare.as_ref().is_some_and(|w| w.warm);
        // `is_idle` also checks that nothing was sent since its last counts: a viewer may
        // have just been handed to it.
        if !ready || !self.active.as_ref().is_some_and(Worker::is_idle) {
            return;
        }
        if let Some(worker) = self.active.take() {
            self.promoted_at = None;
            log::debug!("media worker {} idle; retiring it", worker.id);
            if now.saturating_duration_since(worker.started) >= HEALTHY_LIFE {
                self.respawn_delay = RESPAWN_DELAY;
            }
            self.out.push(Action::Stop { worker: worker.id });
        }
    }

    fn on_gone(&mut self, now: Instant, id: u64) {
        if self.spare.take_if(|w| w.id == id).is_some() {
            self.out.push(Action::Reap {
                worker: id,
                spare: true,
            });
            return self.worker_failed(now);
        }
        let Some(worker) = self.active.take_if(|w| w.id == id) else {
            return;
        };
        self.promoted_at = None;
        self.refuse_pictures(&worker, snapshots::WORKER_DIED);
        let young = now.saturating_duration_since(worker.started) < HEALTHY_LIFE;
        self.out.push(Action::Reap {
            worker: id,
            spare: false,
        });
        self.out.push(Action::Counts {
            counts: CameraSnapshot::default(),
            new_frames: 0,
        });
        self.out.push(Action::EndBroadcast);
        if young {
            self.worker_failed(now);
        } else {
            self.respawn_delay = RESPAWN_DELAY;
        }
        self.ensure_spare(now);
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
