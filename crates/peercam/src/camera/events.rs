//! The words between the camera loop and its policy: what the loop observed ([`Event`]) and
//! what the policy asks it to do ([`Action`]). Plain data: no behaviour lives here.

use peercam_wire::{CameraSnapshot, Chosen, FromWorker, Jpeg, SnapshotSpec, WorkerSettings};

use crate::signaling::{Incoming, Outgoing};

/// What the camera loop observed.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The hub sent a message to one of the device's members.
    Signal {
        /// The device member (`camera`, or `camera-N` in a MESH room).
        member: String,
        /// The message.
        msg: Outgoing,
    },
    /// A worker sent a message.
    Worker {
        /// The worker's number.
        worker: u64,
        /// The message.
        msg: FromWorker,
    },
    /// A worker's socket closed: it exited, or is about to.
    Gone {
        /// The worker's number.
        worker: u64,
    },
    /// [`Action::Spawn`] started the worker's process.
    Spawned {
        /// The worker's number.
        worker: u64,
    },
    /// [`Action::Spawn`] could not start the worker's process.
    SpawnFailed {
        /// The worker's number.
        worker: u64,
        /// Why, for the log.
        error: String,
    },
    /// Someone is opening the page.
    Prime,
    /// Someone asks for a still picture (`/snapshot.jpg`).
    Snapshot {
        /// The loop's number for the request: the answer carries it.
        id: u64,
        /// Size and quality.
        spec: SnapshotSpec,
    },
    /// The time the policy's `next_deadline` named has come.
    Tick,
    /// The camera stops.
    Stop,
}

/// What the camera loop must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Start worker `worker`'s process; once this batch is carried out, report
    /// [`Event::Spawned`] or [`Event::SpawnFailed`] before anything else.
    Spawn {
        /// The worker's number.
        worker: u64,
        /// What it is started with.
        settings: Box<WorkerSettings>,
    },
    /// Pass a message for one of the device's members on to a worker.
    Signal {
        /// The worker's number.
        worker: u64,
        /// The device member it is for.
        member: String,
        /// The message.
        msg: Outgoing,
    },
    /// Ask a worker to take a still picture.
    Snapshot {
        /// The worker's number.
        worker: u64,
        /// The request's number.
        id: u64,
        /// Size and quality.
        spec: SnapshotSpec,
    },
    /// Hand the one who asked for picture `id` the picture, or why there is none.
    Snapshotted {
        /// The request's number.
        id: u64,
        /// The JPEG, or a sentence for the person who asked.
        result: Result<Jpeg, String>,
    },
    /// Ask a worker to load what a session needs.
    Prime {
        /// The worker's number.
        worker: u64,
    },
    /// Tell a worker to close its peers and exit.
    Stop {
        /// The worker's number.
        worker: u64,
    },
    /// A worker ended on its own: collect its exit status for the log.
    Reap {
        /// The worker's number.
        worker: u64,
        /// It was the spare (else the active worker, and the broadcast ends next).
        spare: bool,
    },
    /// Hand the hub a message from one of the device's members.
    Deliver {
        /// The device member sending it.
        member: String,
        /// The message.
        msg: Incoming,
    },
    /// A device member has no peer left: if the device was invited as it, it leaves its room.
    Release {
        /// The device member.
        member: String,
    },
    /// Someone invites the device into a MESH room.
    AcceptInvite {
        /// Who invites.
        from: String,
        /// The room.
        conversation: String,
    },
    /// Publish the active worker's counts.
    Counts {
        /// Its counts.
        counts: CameraSnapshot,
        /// Frames it encoded since its previous counts.
        new_frames: u64,
    },
    /// The active worker died: leave every room the device was invited into, end the
    /// broadcast (viewers get `left` and `end`, and the page rejoins) and open it again.
    EndBroadcast,
    /// The first worker is ready: the camera has started.
    Started {
        /// What it chose, when it was asked to choose.
        chosen: Option<Chosen>,
    },
    /// The first worker could not start: neither can the camera.
    NotStarted(NotStarted),
    /// The camera stops: leave every room and the broadcast (the workers' `Stop` follow).
    Close,
}

/// Why the first worker did not start.
#[derive(Debug, Clone, PartialEq)]
pub enum NotStarted {
    /// Its process could not be started.
    Spawn(String),
    /// Choosing the pipeline failed.
    Select(String),
    /// Building or initialising the pipeline failed.
    Failed(String),
    /// It exited before it was ready (its exit status is the loop's to collect).
    Exited {
        /// The worker's number.
        worker: u64,
    },
    /// It was not ready within [`START_LIMIT`](super::policy::START_LIMIT).
    TimedOut,
}
