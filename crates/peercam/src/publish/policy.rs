//! When the device publishes, retries and gives up on a WHIP session: the states idle →
//! posting → live, and backing off after any failure (1 s, doubling to 30 s; a session that
//! stayed live for a minute starts the wait over).
//!
//! Pure: the camera loop (`camera/publish.rs`) passes in what happened ([`Event`]) with the
//! time, and carries out the [`Action`]s it gets back; [`Publisher::next_deadline`] says when
//! to come back with [`Event::Tick`]. Nothing here reads the clock, sends HTTP or talks to a
//! worker. Each attempt is a peer of its own (`whip-1`, `whip-2`, …), so that whatever arrives
//! late for an attempt already given up on is told apart and let go.

use std::time::{Duration, Instant};

/// The first wait after a failure.
pub const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest wait between attempts.
pub const MAX_RETRY: Duration = Duration::from_secs(30);
/// A session live this long was healthy: the next failure waits [`FIRST_RETRY`] again.
pub const HEALTHY: Duration = Duration::from_secs(60);
/// The longest the camera may take to make its offer: a worker starting after a failure takes
/// seconds, a first one with no stream profile known waits for the first frame.
pub const OFFER_LIMIT: Duration = Duration::from_secs(30);

/// The prefix of the publisher's peer ids.
pub const PREFIX: &str = "whip-";

/// What the camera loop observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The camera is ready: publishing begins.
    Begin,
    /// The time [`Publisher::next_deadline`] named has come.
    Tick,
    /// The worker's offer for `peer`, its candidates gathered in it.
    Offer {
        /// The attempt's peer.
        peer: String,
        /// The offer.
        sdp: String,
    },
    /// The server took the offer (`201 Created`).
    Answered {
        /// The attempt's peer.
        peer: String,
        /// The server's answer.
        answer: String,
        /// The session's URL (`Location`, made absolute).
        location: Option<String>,
    },
    /// The server refused the offer, or could not be reached.
    PostFailed {
        /// The attempt's peer.
        peer: String,
        /// Why, in a sentence (the status and the server's body).
        error: String,
    },
    /// The worker gave up on `peer` (`NEGOTIATION_FAILED`): an answer it cannot use, a
    /// connection that never came up, or a server that fell silent.
    Refused {
        /// The attempt's peer.
        peer: String,
        /// The worker's sentence.
        reason: String,
    },
    /// The worker serving the publisher's peer died (its peers with it).
    WorkerGone,
    /// The device stops.
    Stop,
}

/// What the camera loop must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Ask the worker for an offer to `peer` (an `offerRequest` from it to the camera).
    AskOffer {
        /// The attempt's peer.
        peer: String,
    },
    /// `POST` the offer to the endpoint; report [`Event::Answered`] or [`Event::PostFailed`].
    Post {
        /// The attempt's peer.
        peer: String,
        /// The offer.
        offer: String,
    },
    /// Hand the worker the server's answer (a `finalize` from `peer`).
    Finalize {
        /// The attempt's peer.
        peer: String,
        /// The answer.
        answer: String,
    },
    /// The worker lets go of `peer` (a `left` from it).
    Release {
        /// The attempt's peer.
        peer: String,
    },
    /// `DELETE` a session at the server (its `Location`).
    Delete {
        /// The session's URL.
        location: String,
    },
}

/// The state, as shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Not publishing (before the camera is ready, or after it stopped).
    Idle,
    /// An attempt is under way: the camera makes its offer, or the server has it.
    Posting,
    /// The server answered; the stream flows.
    Live,
    /// Waiting before the next attempt.
    BackingOff,
}

impl State {
    /// Its name in the log and in `/api/stats`.
    pub fn name(self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Posting => "posting",
            State::Live => "live",
            State::BackingOff => "backing-off",
        }
    }
}

/// Where the publisher is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Not started, or stopped.
    Idle,
    /// The worker was asked for an offer; it must come by `deadline`.
    Offering { peer: String, deadline: Instant },
    /// The offer was posted.
    Posting { peer: String },
    /// The server answered.
    Live {
        peer: String,
        session: Option<String>,
        since: Instant,
    },
    /// The next attempt starts at `until`.
    BackingOff { until: Instant },
}

/// The publisher: see the module comment.
#[derive(Debug)]
pub struct Publisher {
    /// The endpoint as shown in the log (never with a token).
    shown: String,
    /// Where it is.
    phase: Phase,
    /// When the current state began.
    since: Instant,
    /// The wait after the next failure.
    delay: Duration,
    /// Attempts made (each a `POST`, or an offer that never came).
    attempts: u64,
    /// Why the last attempt ended, if one failed.
    last_error: Option<String>,
    /// Actions of the event being handled.
    out: Vec<Action>,
}

impl Publisher {
    /// A publisher for the endpoint shown as `shown`, idle until [`Event::Begin`].
    pub fn new(shown: String, now: Instant) -> Publisher {
        Publisher {
            shown,
            phase: Phase::Idle,
            since: now,
            delay: FIRST_RETRY,
            attempts: 0,
            last_error: None,
            out: Vec::new(),
        }
    }

    /// The endpoint, as shown.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The state, as shown.
    pub fn state(&self) -> State {
        match self.phase {
            Phase::Idle => State::Idle,
            Phase::Offering { .. } | Phase::Posting { .. } => State::Posting,
            Phase::Live { .. } => State::Live,
            Phase::BackingOff { .. } => State::BackingOff,
        }
    }

    /// When the current state began.
    pub fn since(&self) -> Instant {
        self.since
    }

    /// Attempts made so far.
    pub fn attempts(&self) -> u64 {
        self.attempts
    }

    /// Why the last failed attempt ended.
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// When the next attempt starts, while backing off.
    pub fn retry_at(&self) -> Option<Instant> {
        match self.phase {
            Phase::BackingOff { until } => Some(until),
            _ => None,
        }
    }

    /// Whether `peer` names a publisher's peer (of any attempt).
    pub fn is_ours(peer: &str) -> bool {
        peer.starts_with(PREFIX)
    }

    /// When the loop must pass [`Event::Tick`] at the latest; `None`: only other events.
    pub fn next_deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::Offering { deadline, .. } => Some(deadline),
            Phase::BackingOff { until } => Some(until),
            _ => None,
        }
    }

    /// Takes in what happened at `now`; returns what to do, in order.
    pub fn handle(&mut self, now: Instant, event: Event) -> Vec<Action> {
        match event {
            Event::Begin => {
                if self.phase == Phase::Idle && self.attempts == 0 {
                    self.attempt(now);
                }
            }
            Event::Tick => match &self.phase {
                Phase::Offering { peer, deadline } if now >= *deadline => {
                    let peer = peer.clone();
                    self.out.push(Action::Release { peer });
                    let why = format!(
                        "the camera made no offer within {} s",
                        OFFER_LIMIT.as_secs()
                    );
                    self.fail(now, why);
                }
                Phase::BackingOff { until } if now >= *until => self.attempt(now),
                _ => {}
            },
            Event::Offer { peer, sdp } => {
                if self.is_current(&peer, |p| matches!(p, Phase::Offering { .. })) {
                    self.phase = Phase::Posting { peer: peer.clone() };
                    self.out.push(Action::Post { peer, offer: sdp });
                }
            }
            Event::Answered {
                peer,
                answer,
                location,
            } => {
                if self.is_current(&peer, |p| matches!(p, Phase::Posting { .. })) {
                    if location.is_none() {
                        log::warn!(
                            "publishing to {}: the server named no session URL (Location); \
                             the session cannot be ended when the camera stops",
                            self.shown
                        );
                    }
                    self.out.push(Action::Finalize {
                        peer: peer.clone(),
                        answer,
                    });
                    self.enter(
                        now,
                        Phase::Live {
                            peer,
                            session: location,
                            since: now,
                        },
                    );
                } else if let Some(location) = location {
                    // Given up on while the server answered: it holds a session for nothing.
                    self.out.push(Action::Delete { location });
                }
            }
            Event::PostFailed { peer, error } => {
                if self.is_current(&peer, |p| matches!(p, Phase::Posting { .. })) {
                    // The worker's peer waits for an answer that will not come.
                    self.out.push(Action::Release { peer });
                    self.fail(now, error);
                }
            }
            Event::Refused { peer, reason } => {
                if self.is_current(&peer, |_| true) {
                    self.end_session();
                    self.fail(now, format!("the camera gave up on the session: {reason}"));
                }
            }
            Event::WorkerGone => {
                if matches!(
                    self.phase,
                    Phase::Offering { .. } | Phase::Posting { .. } | Phase::Live { .. }
                ) {
                    self.end_session();
                    self.fail(now, "the camera's media worker ended".into());
                }
            }
            Event::Stop => {
                if self.phase != Phase::Idle {
                    self.end_session();
                    self.enter(now, Phase::Idle);
                }
            }
        }
        std::mem::take(&mut self.out)
    }

    /// Whether `peer` is the current attempt's and the phase is one `fits`.
    fn is_current(&self, peer: &str, fits: impl Fn(&Phase) -> bool) -> bool {
        let current = match &self.phase {
            Phase::Offering { peer, .. } | Phase::Posting { peer } | Phase::Live { peer, .. } => {
                peer
            }
            Phase::Idle | Phase::BackingOff { .. } => return false,
        };
        current == peer && fits(&self.phase)
    }

    /// A new attempt: a fresh peer asks the worker for an offer.
    fn attempt(&mut self, now: Instant) {
        self.attempts += 1;
        let peer = format!("{PREFIX}{}", self.attempts);
        self.out.push(Action::AskOffer { peer: peer.clone() });
        self.enter(
            now,
            Phase::Offering {
                peer,
                deadline: now + OFFER_LIMIT,
            },
        );
    }

    /// A live session the device gives up on is ended at the server.
    fn end_session(&mut self) {
        if let Phase::Live {
            session: Some(location),
            ..
        } = &self.phase
        {
            self.out.push(Action::Delete {
                location: location.clone(),
            });
        }
    }

    /// The attempt failed: wait, longer after each failure in a row.
    fn fail(&mut self, now: Instant, error: String) {
        if let Phase::Live { since, .. } = self.phase {
            if now.saturating_duration_since(since) >= HEALTHY {
                self.delay = FIRST_RETRY;
            }
        }
        let wait = self.delay;
        self.delay = (self.delay * 2).min(MAX_RETRY);
        self.last_error = Some(error);
        self.enter(now, Phase::BackingOff { until: now + wait });
    }

    /// Moves to `phase`, with one log line when the shown state changes.
    fn enter(&mut self, now: Instant, phase: Phase) {
        let before = self.state();
        self.phase = phase;
        let after = self.state();
        if before == after {
            return;
        }
        self.since = now;
        let url = &self.shown;
        match &self.phase {
            Phase::Idle => log::info!("publishing to {url}: stopped"),
            Phase::Offering { .. } | Phase::Posting { .. } => {
                log::info!("publishing to {url}: posting (attempt {})", self.attempts)
            }
            Phase::Live { .. } => log::info!("publishing to {url}: live"),
            Phase::BackingOff { until } => log::warn!(
                "publishing to {url}: backing off, next attempt in {:.1} s: {}",
                until.saturating_duration_since(now).as_secs_f64(),
                self.last_error.as_deref().unwrap_or_default()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publisher(now: Instant) -> Publisher {
        Publisher::new("http://srv:7080/whip/endpoint/cam".into(), now)
    }

    /// Runs one attempt up to the offer being posted; the attempt's peer.
    fn to_posting(p: &mut Publisher, now: Instant, event: Event) -> String {
        let peer = match p.handle(now, event).as_slice() {
            [Action::AskOffer { peer }] => peer.clone(),
            other => panic!("expected an offer request, got {other:?}"),
        };
        assert_eq!(p.state(), State::Posting);
        let actions = p.handle(
            now,
            Event::Offer {
                peer: peer.clone(),
                sdp: "v=0 offer".into(),
            },
        );
        assert_eq!(
            actions,
            vec![Action::Post {
                peer: peer.clone(),
                offer: "v=0 offer".into()
            }]
        );
        peer
    }

    fn answer(p: &mut Publisher, now: Instant, peer: &str, location: &str) -> Vec<Action> {
        p.handle(
            now,
            Event::Answered {
                peer: peer.into(),
                answer: "v=0 answer".into(),
                location: Some(location.into()),
            },
        )
    }

    #[test]
    fn an_attempt_runs_offer_post_answer_and_goes_live() {
        let t0 = Instant::now();
        let mut p = publisher(t0);
        assert_eq!(p.state(), State::Idle);
        assert_eq!(p.handle(t0, Event::Tick), vec![]);
        let peer = to_posting(&mut p, t0, Event::Begin);
        assert_eq!(peer, "whip-1");
        assert!(Publisher::is_ours(&peer));
        let t1 = t0 + Duration::from_millis(300);
        assert_eq!(
            answer(&mut p, t1, &peer, "/whip/resource/cam"),
            vec![Action::Finalize {
                peer: peer.clone(),
                answer: "v=0 answer".into()
            }]
        );
        assert_eq!((p.state(), p.since(), p.attempts()), (State::Live, t1, 1));
        assert_eq!(p.next_deadline(), None);
        // A second Begin (the camera is ready only once) changes nothing.
        assert_eq!(p.handle(t1, Event::Begin), vec![]);
    }

    #[test]
    fn a_refused_post_releases_the_peer_and_backs_off_doubling_to_the_cap() {
        let t0 = Instant::now();
        let mut p = publisher(t0);
        let mut now = t0;
        let mut event = Event::Begin;
        let mut waits = Vec::new();
        for _ in 0..8 {
            let peer = to_posting(&mut p, now, event.clone());
            let actions = p.handle(
                now,
                Event::PostFailed {
                    peer: peer.clone(),
                    error: "the server answered 503: Janus unavailable".into(),
                },
            );
            assert_eq!(actions, vec![Action::Release { peer }]);
            assert_eq!(p.state(), State::BackingOff);
            let until = p.next_deadline().unwrap();
            waits.push(until - now);
            // Not yet: nothing happens.
            assert_eq!(
                p.handle(until - Duration::from_millis(1), Event::Tick),
                vec![]
            );
            now = until;
            event = Event::Tick;
        }
        let secs: Vec<u64> = waits.iter().map(Duration::as_secs).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(p.attempts(), 8);
        assert_eq!(
            p.last_error(),
            Some("the server answered 503: Janus unavailable")
        );
    }

    #[test]
    fn a_healthy_minute_starts_the_wait_over_and_a_short_session_does_not() {
        let t0 = Instant::now();
        let mut p = publisher(t0);
        let peer = to_posting(&mut p, t0, Event::Begin);
        p.handle(
            t0,
            Event::PostFailed {
                peer,
                error: "refused".into(),
            },
        );
        let t1 = p.next_deadline().unwrap();
        let peer = to_posting(&mut p, t1, Event::Tick);
        p.handle(
            t1,
            Event::PostFailed {
                peer,
                error: "refused".into(),
            },
        );
        // Two failures: the next wait would be 4 s.
        let t2 = p.next_deadline().unwrap();
        assert_eq!(t2 - t1, Duration::from_secs(2));
        let peer = to_posting(&mut p, t2, Event::Tick);
        answer(&mut p, t2, &peer, "/s/3");
        // Live for 10 s only: the server dies, the worker hears nothing and gives up.
        let t3 = t2 + Duration::from_secs(10);
        let actions = p.handle(
            t3,
            Event::Refused {
                peer: peer.clone(),
                reason: "the viewer sent nothing for 15 s".into(),
            },
        );
        assert_eq!(
            actions,
            vec![Action::Delete {
                location: "/s/3".into()
            }]
        );
        assert_eq!(p.next_deadline().unwrap() - t3, Duration::from_secs(4));
        // This time it stays live for a minute.
        let t4 = p.next_deadline().unwrap();
        let peer = to_posting(&mut p, t4, Event::Tick);
        answer(&mut p, t4, &peer, "/s/4");
        let t5 = t4 + HEALTHY;
        p.handle(t5, Event::WorkerGone);
        assert_eq!(p.state(), State::BackingOff);
        assert_eq!(p.next_deadline().unwrap() - t5, FIRST_RETRY);
        assert_eq!(p.last_error(), Some("the camera's media worker ended"));
    }

    #[test]
    fn the_worker_dying_ends_the_session_at_the_server() {
        let t0 = Instant::now();
        let mut p = publisher(t0);
        let peer = to_posting(&mut p, t0, Event::Begin);
        answer(&mut p, t0, &peer, "https://srv/session/9");
        assert_eq!(
            p.handle(t0, Event::WorkerGone),
            vec![Action::Delete {
                location: "https://srv/session/9".into()
            }]
        );
        // The dead worker's peer is not released: it went with the worker.
        let peer = to_posting(&mut p, t0 + FIRST_RETRY, Event::Tick);
        assert_eq!(peer, "whip-2");
    }

    #[test]
    fn an_answer_for_an_attempt_given_up_on_is_deleted_at_the_server() {
        let t0 = Instant::now();
        let mut p = publisher(t0);
        let peer = to_posting(&mut p, t0, Event::Begin);
        // The worker died while the POST was on its way.
        assert_eq!(p.handle(t0, Event::WorkerGone), vec![]);
        let late = answer(&mut p, t0, &peer, "/whip/resource/cam");
        assert_eq!(
            late,
            vec![Action::Delete {
                location: "/whip/resource/cam".into()
            }]
        );
        assert_eq!(p.state(), State::BackingOff);
        // Late failures and offers of the old attempt change nothing.
        let stale = [
            Event::PostFailed {
                peer: peer.clone(),
                error: "x".into(),
            },
            Event::Refused {
                peer: peer.clone(),
                reason: "x".into(),
            },
            Event::Offer {
                peer: peer.clone(),
                sdp: "v=0".into(),
            },
        ];
        for event in stale {
            assert_eq!(p.handle(t0, event), vec![]);
        }
        assert_eq!(p.state(), State::BackingOff);
    }

    #[test]
    fn an_offer_that_never_comes_times_out() {
        let t0 = Instant::now();
        let mut p = publisher(t0);
        let actions = p.handle(t0, Event::Begin);
        assert_eq!(
            actions,
            vec![Action::AskOffer {
                peer: "whip-1".into()
            }]
        );
        assert_eq!(p.next_deadline(), Some(t0 + OFFER_LIMIT));
        let t1 = t0 + OFFER_LIMIT;
        assert_eq!(
            p.handle(t1, Event::Tick),
            vec![Action::Release {
                peer: "whip-1".into()
            }]
        );
        assert_eq!(p.state(), State::BackingOff);
        assert!(p.last_error().unwrap().contains("no offer"));
    }

    #[test]
    fn a_refusal_before_the_answer_backs_off_without_a_delete() {
        let t0 = Instant::now();
        let mut p = publisher(t0);
        let actions = p.handle(t0, Event::Begin);
        assert_eq!(actions.len(), 1);
        let actions = p.handle(
            t0,
            Event::Refused {
                peer: "whip-1".into(),
                reason: "the camera could not start a stream".into(),
            },
        );
        assert_eq!(actions, vec![]);
        assert_eq!(p.state(), State::BackingOff);
        assert_eq!(p.retry_at(), Some(t0 + FIRST_RETRY));
    }

    #[test]
    fn stopping_ends_a_live_session_and_nothing_follows() {
        let t0 = Instant::now();
        let mut p = publisher(t0);
        let peer = to_posting(&mut p, t0, Event::Begin);
        answer(&mut p, t0, &peer, "/whip/resource/cam");
        assert_eq!(
            p.handle(t0, Event::Stop),
            vec![Action::Delete {
                location: "/whip/resource/cam".into()
            }]
        );
        assert_eq!((p.state(), p.next_deadline()), (State::Idle, None));
        assert_eq!(p.handle(t0 + MAX_RETRY, Event::Tick), vec![]);
        assert_eq!(p.handle(t0, Event::Begin), vec![]);
        // Stopping while backing off deletes nothing.
        let mut q = publisher(t0);
        let peer = to_posting(&mut q, t0, Event::Begin);
        q.handle(
            t0,
            Event::PostFailed {
                peer,
                error: "x".into(),
            },
        );
        assert_eq!(q.handle(t0, Event::Stop), vec![]);
        assert_eq!(q.state(), State::Idle);
    }

    #[test]
    fn a_session_without_a_location_goes_live_and_is_never_deleted() {
        let t0 = Instant::now();
        let mut p = publisher(t0);
        let peer = to_posting(&mut p, t0, Event::Begin);
        let actions = p.handle(
            t0,
            Event::Answered {
                peer: peer.clone(),
                answer: "v=0".into(),
                location: None,
            },
        );
        assert!(matches!(actions.as_slice(), [Action::Finalize { .. }]));
        assert_eq!(p.state(), State::Live);
        assert_eq!(p.handle(t0, Event::Stop), vec![]);
    }
}
