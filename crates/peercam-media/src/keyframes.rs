//! When the one shared encoder may start a keyframe: the policy that coalesces keyframe
//! requests (viewers' PLI/FIR and the device's own on a viewer joining).
//!
//! Every viewer watches the same encode, so a keyframe one viewer asks for is sent to all, and
//! a keyframe costs several times a predicted frame: encoders hold their bitrate by starving
//! the frames after it, so back-to-back keyframes blur every viewer's picture. On a lossy
//! link a viewer may ask after every unrepaired loss, and several viewers may ask within a
//! few milliseconds of each other for the same loss upstream of them.
//!
//! Rules, with [`MIN_INTERVAL`] between keyframes:
//! - a viewer's request passes if no keyframe started within the interval;
//! - otherwise it is held: the first held request is released once the interval has passed
//!   (so nobody waits more than one interval), and further ones are merged into it;
//! - the device's own request (a viewer joined and has no picture yet) always passes, and
//!   counts as a keyframe: a held request is then satisfied by it.
//!
//! Pure: time is passed in. The glue (fanout.rs) sees the requests and arms the timer; this
//! module must not touch GStreamer.

use std::time::{Duration, Instant};

/// Least time between two keyframes asked for by viewers.
///
/// 500 ms: at most two extra keyframes a second on top of the encoder's own GOP, however many
/// viewers ask; a viewer whose request is held still has its picture back within about half a
/// second (under the one-second freezes people notice), and Chromium repeats an unanswered
/// request every ~200 ms, so a dropped one is not lost for long either.
pub const MIN_INTERVAL: Duration = Duration::from_millis(500);

/// What to do with a keyframe request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send it to the encoder now.
    Pass,
    /// Hold it; ask again (with [`KeyframeGate::release`]) after this long.
    Hold(Duration),
    /// Drop it: a held request (or a keyframe just started) already answers it.
    Drop,
}

/// The gate in front of the shared encoder.
#[derive(Debug, Clone)]
pub struct KeyframeGate {
    /// Least time between keyframes asked for by viewers.
    interval: Duration,
    /// When the last keyframe was let through.
    last: Option<Instant>,
    /// A request is held until the interval has passed.
    held: bool,
    /// Requests let through so far.
    passed: u64,
    /// Requests dropped or merged so far.
    dropped: u64,
}

impl Default for KeyframeGate {
    fn default() -> Self {
        KeyframeGate::new(MIN_INTERVAL)
    }
}

impl KeyframeGate {
    /// A gate letting viewers' requests through at most once per `interval`.
    pub fn new(interval: Duration) -> KeyframeGate {
        KeyframeGate {
            interval,
            last: None,
            held: false,
            passed: 0,
            dropped: 0,
        }
    }

    /// A viewer asks for a keyframe at `now`.
    pub fn request(&mut self, now: Instant) -> Verdict {
        match self.wait(now) {
            None => self.pass(now),
            Some(_) if self.held => {
                self.dropped += 1;
                Verdict::Drop
            }
            Some(left) => {
                self.held = true;
                self.dropped += 1;
                Verdict::Hold(left)
            }
        }
    }

    /// The timer of a held request fired at `now`: pass it, hold it longer (a keyframe
    /// started since), or drop it (a keyframe the device forced answered it).
    pub fn release(&mut self, now: Instant) -> Verdict {
        if !self.held {
            return Verdict::Drop;
        }
        match self.wait(now) {
            None => self.pass(now),
            Some(left) => Verdict::Hold(left),
        }
    }

    /// The device forces a keyframe at `now` (a viewer joined): it passes and is counted.
    pub fn force(&mut self, now: Instant) {
        self.pass(now);
    }

    /// Requests let through and requests dropped or merged, so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.passed, self.dropped)
    }

    /// How long until a keyframe may start, if not now.
    fn wait(&self, now: Instant) -> Option<Duration> {
        let last = self.last?;
        let since = now.saturating_duration_since(last);
        (since < self.interval).then(|| self.interval - since)
    }

    fn pass(&mut self, now: Instant) -> Verdict {
        self.last = Some(now);
        self.held = false;
        self.passed += 1;
        Verdict::Pass
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn the_first_request_passes() {
        let mut gate = KeyframeGate::default();
        assert_eq!(gate.request(Instant::now()), Verdict::Pass);
    }

    #[test]
    fn requests_within_the_interval_become_one_held_request() {
        let t0 = Instant::now();
        let mut gate = KeyframeGate::new(ms(500));
        assert_eq!(gate.request(t0), Verdict::Pass);
        assert_eq!(gate.request(t0 + ms(100)), Verdict::Hold(ms(400)));
        assert_eq!(gate.request(t0 + ms(150)), Verdict::Drop);
        assert_eq!(gate.request(t0 + ms(499)), Verdict::Drop);
        assert_eq!(gate.release(t0 + ms(500)), Verdict::Pass);
        // The released keyframe starts a new interval.
        assert_eq!(gate.request(t0 + ms(600)), Verdict::Hold(ms(400)));
        assert_eq!(gate.counts(), (2, 4));
    }

    #[test]
    fn a_request_after_the_interval_passes() {
        let t0 = Instant::now();
        let mut gate = KeyframeGate::new(ms(500));
        assert_eq!(gate.request(t0), Verdict::Pass);
        assert_eq!(gate.request(t0 + ms(500)), Verdict::Pass);
        assert_eq!(gate.request(t0 + ms(2000)), Verdict::Pass);
    }

    #[test]
    fn a_storm_of_requests_yields_at_most_one_keyframe_per_interval() {
        let t0 = Instant::now();
        let mut gate = KeyframeGate::new(ms(500));
        let mut keyframes = Vec::new();
        let mut timer: Option<Instant> = None;
        // Four viewers each asking every 20 ms for 5 s, the held request released on time.
        for step in 0..250u64 {
            let now = t0 + ms(step * 20);
            if let Some(at) = timer.filter(|at| *at <= now) {
                timer = None;
                match gate.release(at) {
                    Verdict::Pass => keyframes.push(at),
                    Verdict::Hold(d) => timer = Some(at + d),
                    Verdict::Drop => {}
                }
            }
            for _ in 0..4 {
                match gate.request(now) {
                    Verdict::Pass => keyframes.push(now),
                    Verdict::Hold(d) => timer = Some(now + d),
                    Verdict::Drop => {}
                }
            }
        }
        assert!(keyframes.len() <= 11, "{} keyframes", keyframes.len());
        assert!(keyframes.len() >= 9, "{} keyframes", keyframes.len());
        for pair in keyframes.windows(2) {
            assert!(pair[1] - pair[0] >= ms(500), "{:?}", pair[1] - pair[0]);
        }
    }

    #[test]
    fn a_forced_keyframe_always_passes_and_answers_a_held_request() {
        let t0 = Instant::now();
        let mut gate = KeyframeGate::new(ms(500));
        assert_eq!(gate.request(t0), Verdict::Pass);
        assert_eq!(gate.request(t0 + ms(100)), Verdict::Hold(ms(400)));
        // A viewer joins: its keyframe goes out at once, and the held request is answered.
        gate.force(t0 + ms(200));
        assert_eq!(gate.release(t0 + ms(500)), Verdict::Drop);
        // Viewers' requests soon after the forced keyframe are held.
        assert_eq!(gate.request(t0 + ms(600)), Verdict::Hold(ms(100)));
    }

    #[test]
    fn a_held_request_waits_longer_if_a_keyframe_started_since() {
        let t0 = Instant::now();
        let mut gate = KeyframeGate::new(ms(500));
        assert_eq!(gate.request(t0), Verdict::Pass);
        assert_eq!(gate.request(t0 + ms(100)), Verdict::Hold(ms(400)));
        // The timer fires early (a clock's jitter): not yet.
        assert_eq!(gate.release(t0 + ms(450)), Verdict::Hold(ms(50)));
        assert_eq!(gate.release(t0 + ms(500)), Verdict::Pass);
        assert_eq!(gate.release(t0 + ms(600)), Verdict::Drop);
    }

    #[test]
    fn time_going_backwards_does_not_panic() {
        let t0 = Instant::now() + ms(1000);
        let mut gate = KeyframeGate::new(ms(500));
        assert_eq!(gate.request(t0), Verdict::Pass);
        assert_eq!(gate.request(t0 - ms(100)), Verdict::Hold(ms(500)));
    }
}
