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
//! - A request for a still picture (`/snapshot.jpg`) goes to the active worker, which takes
//!   it off the running capture; while nobody watches, it promotes the spare as a viewer
//!   does, which captures briefly for it and retires once idle (policy/snapshots.rs).
//! - A worker that dies ends the broadcast (viewers get `end`, and the page rejoins) and
//!   the rooms the device was invited into; signaling carries on, and a new worker starts,
//!   sooner for a first failure than for repeated ones. Peers that come meanwhile wait for
//!   it (unless they leave first) instead of getting no offer at all.
//!
//! Who does what: policy.rs decides all of the above, with time passed in; run.rs is the
//! loop that feeds it events (the policy's deadlines among them) and carries out its
//! actions; events.rs names both; process.rs is one worker process; stats.rs the live
//! counts; dtls.rs the DTLS certificate every worker's peers present. whep.rs (WHEP players)
//! and publish.rs (the WHIP publisher) keep peers of the camera's own member that are no
//! members of the hub: the loop hands the worker their requests as if from the hub and takes
//! the worker's messages to them before the hub sees them. This file is the camera's face to the service: [`start`] and [`CameraHandle`].
//!
//! The loop runs on a thread of its own, with a single-threaded runtime, rather than as a
//! task on the serving runtime. [`start`] and [`CameraHandle::stop`] (and so the handle's
//! `Drop`) are blocking calls that wait for the loop: the service calls `start` on a
//! blocking thread, beside the mDNS advertiser, and is ready only once it returned; tests
//! call it, and drop the handle, on a runtime's worker thread. On the caller's runtime, the
//! loop could need the very thread its caller blocks (a current-thread runtime would
//! deadlock). The workers' reader and writer tasks live on the loop's runtime and end with
//! it, and relaying signaling to the workers does not wait behind the serving runtime's load.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

pub mod dtls;
mod events;
mod policy;
pub mod process;
mod publish;
mod run;
pub mod stats;
mod whep;

pub use self::stats::CameraStats;
pub use peercam_wire::CameraSnapshot;
use peercam_wire::{AudioCapture, Capture, Chosen, IceSettings, SnapshotSpec, Talkback};

use self::run::{Camera, DeviceSink, Inputs};
use crate::signaling::Hub;

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
    /// The WHIP endpoint the stream is published to, if any (camera/publish.rs).
    pub publish: Option<crate::publish::Target>,
    /// The microphone the workers send, if any.
    pub audio: AudioCapture,
    /// The speaker the workers play talkback on, if any.
    pub talkback: Talkback,
}

/// The answer to a request for a still picture: the JPEG, or a sentence saying why there is
/// none.
pub type SnapshotReply = oneshot::Sender<Result<Vec<u8>, String>>;

/// A request for a still picture, into the camera loop.
#[derive(Debug)]
pub struct SnapshotRequest {
    /// Size and quality.
    pub spec: SnapshotSpec,
    /// Where the answer goes; every request is answered (or this is dropped, when the camera
    /// stops).
    pub reply: SnapshotReply,
}

/// The running camera; stops (the broadcast ends, peers close) when dropped or stopped.
pub struct CameraHandle {
    /// Live counts, kept by the camera loop.
    stats: Arc<CameraStats>,
    /// Poked when someone opens the page.
    primer: Arc<tokio::sync::Notify>,
    /// The WHEP door's way into the camera loop.
    door: crate::whep::Door,
    /// Requests for a still picture into the camera loop.
    snapshots: mpsc::Sender<SnapshotRequest>,
    /// What the first worker chose, when it was asked to choose.
    chosen: Option<Chosen>,
    /// Sent (or dropped) to stop the camera loop.
    stop: Option<oneshot::Sender<()>>,
    /// The camera loop's thread.
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

    /// The WHEP door's way in: players' offers become viewers of the camera.
    pub fn whep_door(&self) -> crate::whep::Door {
        self.door.clone()
    }

    /// Where requests for a still picture go (see [`crate::snapshot`], which sends one at a
    /// time).
    pub fn snapshots(&self) -> mpsc::Sender<SnapshotRequest> {
        self.snapshots.clone()
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

/// Bounds of the camera loop's queues: signaling for every peer of a busy camera fits with
/// room to spare; overflow drops the device's member as for any slow member.
const SIGNAL_QUEUE: usize = 4096;
/// Bound of the workers' messages into the camera loop (see [`SIGNAL_QUEUE`]).
const EVENT_QUEUE: usize = 4096;
/// Bound of the WHEP door's requests waiting for the camera loop; past it a player is told
/// to try again.
const DOOR_QUEUE: usize = 64;
/// Bound of the requests for a still picture: the HTTP side sends one at a time, and those
/// who ask meanwhile share its answer; a full queue is answered "busy" at once.
const SNAPSHOT_QUEUE: usize = 8;

/// Starts the camera: a first worker (which chooses or checks the capture), then the
/// camera's member and its standing broadcast. Blocks until the worker is ready.
pub fn start(hub: Arc<Hub>, settings: CameraSettings) -> Result<CameraHandle, CameraError> {
    let (sig_tx, sig_rx) = mpsc::channel(SIGNAL_QUEUE);
    let (stop_tx, stop_rx) = oneshot::channel();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (door_tx, door_rx) = mpsc::channel(DOOR_QUEUE);
    let (snapshot_tx, snapshot_rx) = mpsc::channel(SNAPSHOT_QUEUE);
    let stats = Arc::new(CameraStats::default());
    let primer = Arc::new(tokio::sync::Notify::new());
    let inputs = Inputs {
        signals: sig_rx,
        stop: stop_rx,
        primer: primer.clone(),
        ready: ready_tx.clone(),
        whep: door_rx,
        snapshots: snapshot_rx,
    };
    let camera = (hub.clone(), settings.clone(), sig_tx.clone(), stats.clone());
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
            drop(ready_tx);
            let (hub, settings, sig_tx, stats) = camera;
            rt.block_on(Camera::run(hub, settings, sig_tx, stats, inputs));
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
        door: crate::whep::Door(door_tx),
        snapshots: snapshot_tx,
        chosen,
        stop: Some(stop_tx),
        thread: Some(thread),
    };
    hub.connect_as(&settings.conversation, Arc::new(DeviceSink(sig_tx)))
        .map_err(|e| CameraError::Pipeline(e.to_string()))?;
    run::open_broadcast(&hub, &settings);
    Ok(handle)
}
