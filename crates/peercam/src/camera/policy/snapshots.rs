//! Which worker takes a still picture (`/snapshot.jpg`), as part of the supervisor's policy.
//!
//! - A picture goes to the active worker, which takes it off the capture its viewers watch.
//! - With no active worker (nobody watches) it promotes the spare, as a viewer's request
//!   does: the spare captures briefly for it, and, idle again, retires like any active worker
//!   once the next spare is warm, taking what it loaded with it.
//! - A picture counts as a message sent to its worker until answered, so a worker is never
//!   retired with one in flight.
//! - It is never kept waiting for a worker: with none to take it (the camera still starting,
//!   or a failure's back-off), and when its worker dies, fails to start or the camera stops,
//!   the answer is at once a sentence saying why.

use std::time::Instant;

use peercam_wire::{Jpeg, SnapshotSpec};

use super::{Action, Supervisor, Worker};

/// Why there is no picture: the camera has not started yet.
pub(super) const STARTING: &str = "the camera is starting; try again in a moment";
/// Why there is no picture: no worker can be started right now.
pub(super) const NO_WORKER: &str =
    "the camera is restarting after a failure of its media worker; try again in a moment";
/// Why there is no picture: its worker could not be started.
pub(super) const WORKER_FAILED: &str =
    "the camera's media worker could not be started; try again in a moment";
/// Why there is no picture: its worker ended before answering.
pub(super) const WORKER_DIED: &str =
    "the camera's media worker ended before it took the picture; try again in a moment";
/// Why there is no picture: the camera stops.
pub(super) const STOPPING: &str = "the camera is stopping";

impl Worker {
    /// Asks it for picture `id`.
    fn take_picture(&mut self, out: &mut Vec<Action>, id: u64, spec: SnapshotSpec) {
        self.sent += 1;
        self.pictures.push(id);
        out.push(Action::Snapshot {
            worker: self.id,
            id,
            spec,
        });
    }
}

impl Supervisor {
    /// Someone asks for a picture: the active worker takes it, else the spare, promoted.
    pub(super) fn on_snapshot(&mut self, now: Instant, id: u64, spec: SnapshotSpec) {
        self.ensure_active(now);
        match self.active.as_mut() {
            Some(worker) => worker.take_picture(&mut self.out, id, spec),
            None => self.refuse_picture(id, NO_WORKER),
        }
    }

    /// The active worker answered picture `id`; an answer to nothing asked is dropped.
    pub(super) fn on_picture(&mut self, id: u64, result: Result<Jpeg, String>) {
        let Some(worker) = self.active.as_mut() else {
            return;
        };
        let before = worker.pictures.len();
        worker.pictures.retain(|&p| p != id);
        if worker.pictures.len() < before {
            self.out.push(Action::Snapshotted { id, result });
        } else {
            log::warn!(
                "media worker {} answered picture {id}, never asked",
                worker.id
            );
        }
    }

    /// Answers picture `id` with `why` there is none.
    pub(super) fn refuse_picture(&mut self, id: u64, why: &str) {
        self.out.push(Action::Snapshotted {
            id,
            result: Err(why.to_owned()),
        });
    }

    /// Answers every picture `worker` was asked for with `why` there is none.
    pub(super) fn refuse_pictures(&mut self, worker: &Worker, why: &str) {
        for &id in &worker.pictures {
            self.refuse_picture(id, why);
        }
    }
}
