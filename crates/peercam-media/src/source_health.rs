//! Whether the camera source is healthy, and what to do when it is not: the decisions behind
//! the capture's source switch ([`crate::source_switch`]).
//!
//! ```text
//!   opening ──frames──▶ proving ──frames for PROBATION──▶ running
//!      │                   │                                 │
//!      │ error, or no frame for OPEN_TIMEOUT                 │ error, or no frame for STALL
//!      │                   │ error, or no frame for STALL    │
//!      └───────────────────┴──────────▶ waiting ◀────────────┘
//!                                  │
//!   opening ◀──── back-off over ───┘
//! ```
//!
//! A source that fails or stalls is stopped and the encoder is fed the placeholder picture
//! instead, so every viewer keeps its connection; the source is reopened after a back-off
//! that doubles from [`BACKOFF_FIRST`] up to [`BACKOFF_MAX`] and starts over once the source
//! has run for [`STABLE`]. Once the reopened source has delivered for [`PROBATION`] the real
//! picture is back (about a second after the source returns); a source that gives a burst
//! of frames and stops again never replaces the placeholder. At the capture's start the
//! source is on screen from its first frame (there is nothing to replace).
//!
//! Pure: time is passed in and the source's frames arrive as a running count, sampled by the
//! caller. It must not touch GStreamer; the worker's loop carries out its [`Action`]s.

use std::time::{Duration, Instant};

/// A running source that delivers nothing for this long has stalled.
pub const STALL: Duration = Duration::from_secs(1);

/// A source just opened may take this long for its first frame (cameras take a second or two
/// to start) before it counts as failed.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a reopened source must keep delivering before it replaces the placeholder.
pub const PROBATION: Duration = Duration::from_secs(1);

/// The first wait before reopening a failed source.
pub const BACKOFF_FIRST: Duration = Duration::from_millis(500);

/// The longest wait before reopening: a camera that comes back is on screen within this
/// (plus its own start-up) of returning.
pub const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// A source that ran this long before failing is reopened after [`BACKOFF_FIRST`] again.
pub const STABLE: Duration = Duration::from_secs(10);

/// What the policy is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The source (or an element inside it) reported an error, or could not be started.
    Error,
    /// The periodic check, with the number of buffers the source has delivered so far
    /// (a count that only grows, over every opening of the source).
    Tick {
        /// Buffers delivered by the source since the capture was built.
        frames: u64,
    },
}

/// Why the source was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// It reported an error.
    Error,
    /// It was delivering and then delivered nothing for [`STALL`].
    Stalled,
    /// It was opened and delivered nothing for [`OPEN_TIMEOUT`].
    NoFrames,
}

/// What the caller carries out, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Feed the encoder the placeholder picture.
    ShowPlaceholder,
    /// Feed the encoder the source's picture again.
    ShowSource,
    /// Stop the source (its elements to NULL); it is reopened after `retry_in`.
    Stop {
        /// What went wrong.
        fault: Fault,
        /// The back-off before the source is opened again.
        retry_in: Duration,
    },
    /// Start the source again (its elements to PLAYING). A failure to start is reported back
    /// as [`Event::Error`].
    Open,
}

/// Where the source stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Opened at `since`; no frame yet.
    Opening {
        /// When it was opened.
        since: Instant,
    },
    /// Reopened and delivering again, while the placeholder stays on screen until it has
    /// done so for [`PROBATION`].
    Proving {
        /// The tick that first saw its frames.
        since: Instant,
        /// The tick that last saw its count advance.
        last: Instant,
    },
    /// Delivering frames, on screen.
    Running {
        /// Its first frame since it was opened (as seen by the ticks).
        since: Instant,
        /// The tick that last saw its count advance.
        last: Instant,
    },
    /// Stopped after a fault; opened again at `until`.
    Waiting {
        /// When to reopen.
        until: Instant,
    },
}

/// The source's health over one capture (from the first viewer to the last).
#[derive(Debug, Clone)]
pub struct SourceHealth {
    /// Where the source stands.
    state: State,
    /// The wait before the next reopening.
    backoff: Duration,
    /// The source's frame count at the last tick.
    seen: u64,
    /// The placeholder is what the encoder is fed.
    placeholder: bool,
}

impl SourceHealth {
    /// The source has just been opened, with the capture, at `now`.
    pub fn new(now: Instant) -> SourceHealth {
        SourceHealth {
            state: State::Opening { since: now },
            backoff: BACKOFF_FIRST,
            seen: 0,
            placeholder: false,
        }
    }

    /// Where the source stands.
    pub fn state(&self) -> State {
        self.state
    }

    /// Whether the encoder is being fed the placeholder.
    pub fn showing_placeholder(&self) -> bool {
        self.placeholder
    }

    /// Takes in one event at `now`; returns what to do, in order.
    pub fn handle(&mut self, now: Instant, event: Event) -> Vec<Action> {
        match event {
            Event::Error => match self.state {
                State::Opening { .. } | State::Proving { .. } | State::Running { .. } => {
                    self.fault(now, Fault::Error)
                }
                // Errors from the instance already stopped (they often come in twos).
                State::Waiting { .. } => Vec::new(),
            },
            Event::Tick { frames } => {
                let advanced = frames > self.seen;
                self.seen = self.seen.max(frames);
                self.tick(now, advanced)
            }
        }
    }

    fn tick(&mut self, now: Instant, advanced: bool) -> Vec<Action> {
        match self.state {
            State::Opening { .. } if advanced => {
                let (since, last) = (now, now);
                self.state = if self.placeholder {
                    State::Proving { since, last }
                } else {
                    State::Running { since, last }
                };
                Vec::new()
            }
            State::Opening { since } if now.saturating_duration_since(since) > OPEN_TIMEOUT => {
                self.fault(now, Fault::NoFrames)
            }
            State::Opening { .. } => Vec::new(),
            State::Proving { since, .. }
                if advanced && now.saturating_duration_since(since) >= PROBATION =>
            {
                self.state = State::Running { since, last: now };
                self.placeholder = false;
                vec![Action::ShowSource]
            }
            State::Proving { since, .. } if advanced => {
                self.state = State::Proving { since, last: now };
                Vec::new()
            }
            State::Running { since, .. } if advanced => {
                self.state = State::Running { since, last: now };
                Vec::new()
            }
            State::Proving { last, .. } | State::Running { last, .. }
                if now.saturating_duration_since(last) > STALL =>
            {
                self.fault(now, Fault::Stalled)
            }
            State::Proving { .. } | State::Running { .. } => Vec::new(),
            State::Waiting { until } if now >= until => {
                self.state = State::Opening { since: now };
                vec![Action::Open]
            }
            State::Waiting { .. } => Vec::new(),
        }
    }

    /// The source failed: the placeholder goes on screen, the source stops and waits.
    fn fault(&mut self, now: Instant, fault: Fault) -> Vec<Action> {
        if let State::Running { since, .. } = self.state {
            if now.saturating_duration_since(since) >= STABLE {
                self.backoff = BACKOFF_FIRST;
            }
        }
        let retry_in = self.backoff;
        self.backoff = (self.backoff * 2).min(BACKOFF_MAX);
        self.state = State::Waiting {
            until: now + retry_in,
        };
        let mut actions = Vec::with_capacity(2);
        if !self.placeholder {
            self.placeholder = true;
            actions.push(Action::ShowPlaceholder);
        }
        actions.push(Action::Stop { fault, retry_in });
        actions
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn tick(h: &mut SourceHealth, at: Instant, frames: u64) -> Vec<Action> {
        h.handle(at, Event::Tick { frames })
    }

    /// A health whose source has run from `t0` and was last seen at `t0` with 10 frames.
    fn running(t0: Instant) -> SourceHealth {
        let mut h = SourceHealth::new(t0);
        assert!(tick(&mut h, t0, 10).is_empty());
        assert_eq!(
            h.state(),
            State::Running {
                since: t0,
                last: t0
            }
        );
        h
    }

    fn stop(fault: Fault, ms: u32) -> Action {
        Action::Stop {
            fault,
            retry_in: ms * MS,
        }
    }

    #[test]
    fn the_first_frame_makes_an_opening_source_run_without_switching() {
        let t0 = Instant::now();
        let mut h = SourceHealth::new(t0);
        assert!(tick(&mut h, t0 + 250 * MS, 0).is_empty());
        assert_eq!(h.state(), State::Opening { since: t0 });
        assert!(tick(&mut h, t0 + 500 * MS, 3).is_empty());
        assert!(!h.showing_placeholder());
        assert!(matches!(h.state(), State::Running { .. }));
    }

    #[test]
    fn an_error_shows_the_placeholder_stops_and_reopens_after_the_backoff() {
        let t0 = Instant::now();
        let mut h = running(t0);
        let t1 = t0 + 2000 * MS;
        assert_eq!(
            h.handle(t1, Event::Error),
            vec![Action::ShowPlaceholder, stop(Fault::Error, 500)]
        );
        assert!(h.showing_placeholder());
        assert_eq!(
            h.state(),
            State::Waiting {
                until: t1 + 500 * MS
            }
        );
        // A second error from the stopped instance changes nothing.
        assert!(h.handle(t1 + MS, Event::Error).is_empty());
        // Frames still in flight when it stopped are not a reopening.
        assert!(tick(&mut h, t1 + 250 * MS, 12).is_empty());
        assert_eq!(tick(&mut h, t1 + 500 * MS, 12), vec![Action::Open]);
        assert_eq!(
            h.state(),
            State::Opening {
                since: t1 + 500 * MS
            }
        );
        assert!(tick(&mut h, t1 + 750 * MS, 12).is_empty());
        // It delivers again: the placeholder stays until it has done so for a second.
        assert!(tick(&mut h, t1 + 1000 * MS, 13).is_empty());
        assert!(matches!(h.state(), State::Proving { .. }));
        assert!(tick(&mut h, t1 + 1500 * MS, 28).is_empty());
        assert!(tick(&mut h, t1 + 1750 * MS, 28).is_empty());
        assert_eq!(tick(&mut h, t1 + 2000 * MS, 43), vec![Action::ShowSource]);
        assert!(!h.showing_placeholder());
        assert!(matches!(h.state(), State::Running { .. }));
    }

    #[test]
    fn a_running_source_that_delivers_nothing_for_a_second_has_stalled() {
        let t0 = Instant::now();
        let mut h = running(t0);
        assert!(tick(&mut h, t0 + 500 * MS, 20).is_empty());
        // Exactly STALL after the last frame is still fine; beyond it is a stall.
        assert!(tick(&mut h, t0 + 1500 * MS, 20).is_empty());
        assert_eq!(
            tick(&mut h, t0 + 1750 * MS, 20),
            vec![Action::ShowPlaceholder, stop(Fault::Stalled, 500)]
        );
        assert_eq!(tick(&mut h, t0 + 2250 * MS, 20), vec![Action::Open]);
        assert!(tick(&mut h, t0 + 2500 * MS, 21).is_empty());
        assert_eq!(tick(&mut h, t0 + 3500 * MS, 51), vec![Action::ShowSource]);
    }

    #[test]
    fn a_reopened_source_that_gives_a_burst_and_stops_never_replaces_the_placeholder() {
        let t0 = Instant::now();
        let mut h = running(t0);
        h.handle(t0 + MS, Event::Error);
        assert_eq!(tick(&mut h, t0 + 501 * MS, 10), vec![Action::Open]);
        // Ten frames, then nothing: still proving when it stalls.
        assert!(tick(&mut h, t0 + 751 * MS, 15).is_empty());
        assert!(tick(&mut h, t0 + 1001 * MS, 20).is_empty());
        assert!(tick(&mut h, t0 + 2001 * MS, 20).is_empty());
        assert_eq!(
            tick(&mut h, t0 + 2002 * MS, 20),
            vec![stop(Fault::Stalled, 1000)]
        );
        assert!(h.showing_placeholder());
        // An error while proving is a fault too.
        assert_eq!(tick(&mut h, t0 + 3002 * MS, 20), vec![Action::Open]);
        assert!(tick(&mut h, t0 + 3252 * MS, 21).is_empty());
        assert_eq!(
            h.handle(t0 + 3300 * MS, Event::Error),
            vec![stop(Fault::Error, 2000)]
        );
        assert!(h.showing_placeholder());
    }

    #[test]
    fn an_opened_source_without_frames_fails_after_the_open_timeout() {
        let t0 = Instant::now();
        let mut h = SourceHealth::new(t0);
        assert!(tick(&mut h, t0 + OPEN_TIMEOUT, 0).is_empty());
        let t1 = t0 + OPEN_TIMEOUT + MS;
        assert_eq!(
            tick(&mut h, t1, 0),
            vec![Action::ShowPlaceholder, stop(Fault::NoFrames, 500)]
        );
        // Reopened, and again nothing: the placeholder stays, the back-off doubles.
        assert_eq!(tick(&mut h, t1 + 500 * MS, 0), vec![Action::Open]);
        let t2 = t1 + 500 * MS + OPEN_TIMEOUT + MS;
        assert_eq!(tick(&mut h, t2, 0), vec![stop(Fault::NoFrames, 1000)]);
    }

    #[test]
    fn a_source_that_cannot_be_opened_backs_off_doubling_up_to_the_maximum() {
        let t0 = Instant::now();
        let mut h = SourceHealth::new(t0);
        let mut now = t0;
        let mut waits = Vec::new();
        let mut actions = h.handle(now, Event::Error);
        for _ in 0..8 {
            let Some(Action::Stop { retry_in, .. }) = actions.last().copied() else {
                panic!("{actions:?}");
            };
            waits.push(retry_in.as_millis());
            // Not yet: one millisecond before the wait is over.
            assert!(tick(&mut h, now + retry_in - MS, 0).is_empty());
            now += retry_in;
            assert_eq!(tick(&mut h, now, 0), vec![Action::Open]);
            // Opening fails at once (the caller reports it as an error).
            actions = h.handle(now, Event::Error);
            assert!(
                matches!(
                    actions.as_slice(),
                    [Action::Stop {
                        fault: Fault::Error,
                        ..
                    }]
                ),
                "{actions:?}"
            );
        }
        assert_eq!(
            waits,
            vec![500, 1000, 2000, 4000, 8000, 10000, 10000, 10000]
        );
        assert!(h.showing_placeholder());
    }

    #[test]
    fn the_backoff_starts_over_after_the_source_ran_fine_for_a_while() {
        let t0 = Instant::now();
        let mut h = running(t0);
        // Fails quickly three times: 500, 1000, 2000 ms.
        let mut now = t0;
        let mut frames = 10;
        for expected in [500, 1000, 2000] {
            now += 1000 * MS;
            let a = h.handle(now, Event::Error);
            assert_eq!(a.last(), Some(&stop(Fault::Error, expected)));
            now += expected * MS;
            assert_eq!(tick(&mut h, now, frames), vec![Action::Open]);
            frames += 1;
            assert!(tick(&mut h, now, frames).is_empty());
            now += PROBATION;
            frames += 30;
            assert_eq!(tick(&mut h, now, frames), vec![Action::ShowSource]);
        }
        // Then runs for STABLE: the next failure waits the first back-off again.
        let start = now;
        while now < start + STABLE {
            now += 250 * MS;
            frames += 1;
            assert!(tick(&mut h, now, frames).is_empty());
        }
        let a = h.handle(now, Event::Error);
        assert_eq!(a, vec![Action::ShowPlaceholder, stop(Fault::Error, 500)]);
    }

    #[test]
    fn a_source_that_fails_again_while_reopening_keeps_the_placeholder() {
        let t0 = Instant::now();
        let mut h = running(t0);
        h.handle(t0 + MS, Event::Error);
        assert_eq!(tick(&mut h, t0 + 501 * MS, 10), vec![Action::Open]);
        // Fails before its first frame: no second ShowPlaceholder.
        assert_eq!(
            h.handle(t0 + 600 * MS, Event::Error),
            vec![stop(Fault::Error, 1000)]
        );
        assert!(h.showing_placeholder());
    }
}
