//! systemd's side of the service: readiness, status lines, stopping, watchdog pings, and the
//! rule that decides whether the camera is healthy enough to ping.
//!
//! Outside systemd (no `NOTIFY_SOCKET`) every notification is a no-op, so the same binary
//! runs by hand. Nothing here decides *when* to notify: the service does; and nothing here
//! touches sockets other than the notify socket.

use std::time::{Duration, Instant};

use sd_notify::NotifyState;

/// Sends notifications to the service manager, if there is one.
#[derive(Debug, Clone)]
pub struct Notifier {
    /// `NOTIFY_SOCKET` was set at start.
    enabled: bool,
    /// `WATCHDOG_USEC`, when the watchdog is on for this process.
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` from the environment.
    pub fn from_env() -> Notifier {
        Notifier {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some_and(|v| !v.is_empty()),
            watchdog: sd_notify::watchdog_enabled().filter(|d| !d.is_zero()),
        }
    }

    /// A notifier that sends nothing (for tests and embedding).
    pub fn disabled() -> Notifier {
        Notifier {
            enabled: false,
            watchdog: None,
        }
    }

    /// Whether a service manager listens.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// How often to ping: half the watchdog timeout, as sd_watchdog_enabled(3) advises, so
    /// that one late ping does not cost a restart. `None` when there is no watchdog.
    pub fn watchdog_period(&self) -> Option<Duration> {
        self.watchdog.map(|d| d / 2)
    }

    /// `READY=1` with a status line.
    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// A status line (`systemctl status` shows it).
    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    /// `WATCHDOG=1`.
    pub fn watchdog(&self) {
        if self.watchdog.is_some() {
            self.send(&[NotifyState::Watchdog]);
        }
    }

    /// `STOPPING=1` with a status line.
    pub fn stopping(&self, status: &str) {
        self.send(&[NotifyState::Stopping, NotifyState::Status(status)]);
    }

    fn send(&self, states: &[NotifyState]) {
        if !self.enabled {
            return;
        }
        if let Err(e) = sd_notify::notify(states) {
            // The manager going away is not the service's problem; the pings it misses are.
            log::debug!("sd_notify failed: {e}");
        }
    }
}

/// Whether the camera is producing frames while someone watches.
///
/// The watchdog must not ping for a wedged pipeline (an encoder that hangs, a worker stuck on
/// a wedged camera driver) or systemd would never restart it; a camera that merely fails or
/// is unplugged is not wedged: the media worker bridges it with a placeholder picture and
/// reopens it, and the encoder's frames keep coming; but capture starts only with the
/// first viewer, and frames may legitimately pause briefly, so the camera counts as wedged
/// only after `stall` without a new frame while it has viewers. Time is passed in so the rule
/// is tested without sleeping.
#[derive(Debug, Clone)]
pub struct FrameWatch {
    stall: Duration,
    frames: u64,
    /// Last time frames advanced or nobody watched.
    progress: Instant,
}

/// What [`FrameWatch::observe`] concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameHealth {
    /// Nobody watches, or frames advance.
    Healthy,
    /// Viewers are attached and no frame came for this long.
    Stalled(Duration),
}

impl FrameWatch {
    /// Starts watching at `now`; frames must advance within `stall` while watched.
    pub fn new(now: Instant, stall: Duration) -> FrameWatch {
        FrameWatch {
            stall,
            frames: 0,
            progress: now,
        }
    }

    /// Takes the current counts: `watched` (branches attached to the encoder) and the encoded
    /// frame counter.
    pub fn observe(&mut self, now: Instant, watched: bool, frames: u64) -> FrameHealth {
        if !watched || frames != self.frames {
            self.frames = frames;
            self.progress = now;
            return FrameHealth::Healthy;
        }
        let quiet = now.saturating_duration_since(self.progress);
        if quiet < self.stall {
            FrameHealth::Healthy
        } else {
            FrameHealth::Stalled(quiet)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STALL: Duration = Duration::from_secs(5);

    fn at(start: Instant, ms: u64) -> Instant {
        start + Duration::from_millis(ms)
    }

    #[test]
    fn nobody_watching_is_healthy_however_long() {
        let t = Instant::now();
        let mut w = FrameWatch::new(t, STALL);
        for s in 0..100 {
            assert_eq!(w.observe(at(t, s * 1000), false, 0), FrameHealth::Healthy);
        }
    }

    #[test]
    fn advancing_frames_are_healthy() {
        let t = Instant::now();
        let mut w = FrameWatch::new(t, STALL);
        for s in 0..100 {
            assert_eq!(
                w.observe(at(t, s * 1000), true, s * 30),
                FrameHealth::Healthy
            );
        }
    }

    #[test]
    fn a_stalled_pipeline_is_noticed_after_the_stall_time() {
        let t = Instant::now();
        let mut w = FrameWatch::new(t, STALL);
        assert_eq!(w.observe(at(t, 0), true, 100), FrameHealth::Healthy);
        assert_eq!(w.observe(at(t, 4_999), true, 100), FrameHealth::Healthy);
        assert_eq!(
            w.observe(at(t, 5_000), true, 100),
            FrameHealth::Stalled(Duration::from_secs(5))
        );
        assert!(matches!(
            w.observe(at(t, 9_000), true, 100),
            FrameHealth::Stalled(_)
        ));
        // Frames resuming make it healthy again at once.
        assert_eq!(w.observe(at(t, 9_500), true, 101), FrameHealth::Healthy);
    }

    #[test]
    fn a_new_viewer_gets_the_whole_stall_time_for_capture_to_start() {
        let t = Instant::now();
        let mut w = FrameWatch::new(t, STALL);
        // Idle for a minute, then a viewer arrives and capture takes 3 s to deliver.
        assert_eq!(w.observe(at(t, 60_000), false, 0), FrameHealth::Healthy);
        assert_eq!(w.observe(at(t, 62_000), true, 0), FrameHealth::Healthy);
        assert_eq!(w.observe(at(t, 63_000), true, 0), FrameHealth::Healthy);
        assert_eq!(w.observe(at(t, 64_000), true, 12), FrameHealth::Healthy);
        // Stalls only count from the last progress.
        assert!(matches!(
            w.observe(at(t, 69_000), true, 12),
            FrameHealth::Stalled(_)
        ));
    }

    #[test]
    fn without_a_manager_nothing_is_sent() {
        let n = Notifier::disabled();
        assert!(!n.enabled());
        assert_eq!(n.watchdog_period(), None);
        n.ready("x");
        n.watchdog();
        n.stopping("y");
    }
}
