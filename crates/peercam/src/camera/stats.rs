//! The camera's live counts: kept by the device from its active media worker's reports, read
//! by `/api/stats` and the watchdog; a snapshot is also what a worker reports.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};

use peercam_wire::CameraSnapshot;

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
    /// H.264 encodes running (0 or 1).
    pub h264_encoders: AtomicUsize,
    /// VP8 encodes running (0 or 1).
    pub vp8_encoders: AtomicUsize,
    /// Branches fed from the VP8 encode.
    pub vp8_branches: AtomicUsize,
    /// Small H.264 encodes running (0 or 1).
    pub small_encoders: AtomicUsize,
    /// Branches fed from the small encode.
    pub small_branches: AtomicUsize,
    /// Opus encodes running (0 or 1).
    pub audio_encoders: AtomicUsize,
    /// Peers fed the camera's sound.
    pub listeners: AtomicUsize,
    /// The audio source failed and was cut off (1) or not (0).
    pub audio_failed: AtomicUsize,
    /// A viewer is talking (1) or not (0).
    pub talking: AtomicUsize,
    /// The shared encoders' rate now, kbit/s.
    pub bitrate_kbps: AtomicU32,
    /// Viewers watching through the WHEP door (answered or being answered).
    pub whep_viewers: AtomicUsize,
    /// Process ids of the active and the spare media worker (0: none).
    pub(super) active_worker: AtomicU32,
    pub(super) spare_worker: AtomicU32,
    /// The WHIP publisher's status, when the device publishes.
    pub(super) publish: std::sync::Mutex<Option<crate::publish::Status>>,
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
            h264_encoders: self.h264_encoders.load(Ordering::Relaxed),
            vp8_encoders: self.vp8_encoders.load(Ordering::Relaxed),
            vp8_branches: self.vp8_branches.load(Ordering::Relaxed),
            small_encoders: self.small_encoders.load(Ordering::Relaxed),
            small_branches: self.small_branches.load(Ordering::Relaxed),
            bitrate_kbps: self.bitrate_kbps.load(Ordering::Relaxed),
            audio_encoders: self.audio_encoders.load(Ordering::Relaxed),
            listeners: self.listeners.load(Ordering::Relaxed),
            audio_failed: self.audio_failed.load(Ordering::Relaxed) != 0,
            talking: self.talking.load(Ordering::Relaxed) != 0,
        }
    }

    /// Process ids of the media workers: the one serving peers, and the spare.
    pub fn worker_pids(&self) -> (Option<u32>, Option<u32>) {
        let pid = |a: &AtomicU32| Some(a.load(Ordering::Relaxed)).filter(|&p| p != 0);
        (pid(&self.active_worker), pid(&self.spare_worker))
    }

    /// The WHIP publisher's status as of now, when the device publishes.
    pub fn publish(&self) -> Option<crate::publish::Status> {
        let status = self.publish.lock().ok()?.clone()?;
        Some(status.at(std::time::Instant::now()))
    }

    /// Takes a worker's counts (frames excepted: the device's count spans workers).
    pub(super) fn set(&self, s: &CameraSnapshot) {
        self.peers.store(s.peers, Ordering::Relaxed);
        self.branches.store(s.branches, Ordering::Relaxed);
        self.connected.store(s.connected, Ordering::Relaxed);
        self.capturing
            .store(usize::from(s.capturing), Ordering::Relaxed);
        self.h264_encoders.store(s.h264_encoders, Ordering::Relaxed);
        self.vp8_encoders.store(s.vp8_encoders, Ordering::Relaxed);
        self.vp8_branches.store(s.vp8_branches, Ordering::Relaxed);
        self.small_encoders
            .store(s.small_encoders, Ordering::Relaxed);
        self.small_branches
            .store(s.small_branches, Ordering::Relaxed);
        self.bitrate_kbps.store(s.bitrate_kbps, Ordering::Relaxed);
        self.audio_encoders
            .store(s.audio_encoders, Ordering::Relaxed);
        self.listeners.store(s.listeners, Ordering::Relaxed);
        self.audio_failed
            .store(usize::from(s.audio_failed), Ordering::Relaxed);
        self.talking
            .store(usize::from(s.talking), Ordering::Relaxed);
    }
}
