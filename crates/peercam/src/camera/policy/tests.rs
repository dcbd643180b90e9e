//! The supervisor's transitions, with time passed in: no process, no clock, no sleep.

use super::*;
use crate::signaling::{ErrorCode, Incoming};
use peercam_wire::{Chosen, Jpeg, SnapshotSpec};

/// The camera's member, and one it was invited into a MESH room as.
const ME: &str = "camera";
const INVITED: &str = "camera-1";

fn settings() -> WorkerSettings {
    WorkerSettings {
        protocol: peercam_wire::PROTOCOL,
        conversation: ME.into(),
        capture: Capture::Launch("given".into()),
        validate: true,
        ice: Default::default(),
        negotiation_timeout: Duration::from_secs(20),
        log_level: "info".into(),
        stream_profile: None,
        dtls: None,
        audio: Default::default(),
        talkback: Default::default(),
    }
}

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

/// A supervisor and the start of its time.
struct Rig {
    /// The supervisor under test.
    sup: Supervisor,
    /// Its time zero.
    t0: Instant,
}

impl Rig {
    /// A supervisor whose first worker (1) started and is ready, at time zero.
    fn running() -> Rig {
        let t0 = Instant::now();
        let (sup, _) = Supervisor::new(settings(), t0);
        let mut rig = Rig { sup, t0 };
        rig.step(ms(0), Event::Spawned { worker: 1 });
        let started = rig.step(ms(0), ready(1));
        assert_eq!(started, [Action::Started { chosen: None }]);
        rig
    }

    /// The actions for `event` at `at` after time zero.
    fn raw(&mut self, at: Duration, event: Event) -> Vec<Action> {
        self.sup.handle(self.t0 + at, event)
    }

    /// As [`Rig::raw`], every process it starts starting.
    fn step(&mut self, at: Duration, event: Event) -> Vec<Action> {
        let actions = self.raw(at, event);
        for worker in spawns(&actions) {
            assert_eq!(self.raw(at, Event::Spawned { worker }), []);
        }
        actions
    }

    /// How long after time zero the supervisor wants a tick.
    fn deadline(&self) -> Option<Duration> {
        self.sup.next_deadline().map(|t| t - self.t0)
    }

    /// A worker serving viewer `a` from `at`, and the next spare started and warm: the
    /// active worker's number and the spare's.
    fn serving(&mut self, at: Duration) -> (u64, u64) {
        let active = self.sup.spare().expect("a spare");
        self.step(at, offer(ME, "a"));
        let started = self.step(at + SPARE_AFTER, Event::Tick);
        let spare = spawns(&started)[0];
        self.step(at + SPARE_AFTER, warm(spare));
        (active, spare)
    }
}

fn ready(worker: u64) -> Event {
    Event::Worker {
        worker,
        msg: FromWorker::Ready {
            protocol: peercam_wire::PROTOCOL,
            launch: "chosen".into(),
            chosen: None,
        },
    }
}

fn warm(worker: u64) -> Event {
    Event::Worker {
        worker,
        msg: FromWorker::Warm,
    }
}

fn gone(worker: u64) -> Event {
    Event::Gone { worker }
}

fn counts(worker: u64, peers: usize, frames: u64, handled: u64) -> Event {
    Event::Worker {
        worker,
        msg: FromWorker::Stats {
            stats: CameraSnapshot {
                peers,
                branches: peers,
                connected: peers,
                frames,
                capturing: peers > 0,
                ..Default::default()
            },
            handled,
        },
    }
}

fn signal(member: &str, msg: Outgoing) -> Event {
    Event::Signal {
        member: member.into(),
        msg,
    }
}

fn offer_request(peer: &str) -> Outgoing {
    Outgoing::OfferRequest { from: peer.into() }
}

fn offer(member: &str, peer: &str) -> Event {
    signal(member, offer_request(peer))
}

fn candidate(member: &str, peer: &str) -> Event {
    signal(
        member,
        Outgoing::Candidate {
            from: peer.into(),
            candidate: "candidate:1".into(),
        },
    )
}

fn left(member: &str, peer: &str) -> Event {
    signal(member, Outgoing::Left { from: peer.into() })
}

fn spawns(actions: &[Action]) -> Vec<u64> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Spawn { worker, .. } => Some(*worker),
            _ => None,
        })
        .collect()
}

/// The messages passed on, as (worker, member, peer).
fn signals(actions: &[Action]) -> Vec<(u64, &str, &str)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Signal {
                worker,
                member,
                msg,
            } => Some((*worker, member.as_str(), peer_of(msg).unwrap_or(""))),
            _ => None,
        })
        .collect()
}

fn settings_of(actions: &[Action]) -> &WorkerSettings {
    actions
        .iter()
        .find_map(|a| match a {
            Action::Spawn { settings, .. } => Some(&**settings),
            _ => None,
        })
        .expect("a worker started")
}

// ---- The first worker ----

#[test]
fn the_first_worker_starts_validating_the_given_capture() {
    let t0 = Instant::now();
    let (sup, actions) = Supervisor::new(settings(), t0);
    assert_eq!(
        actions,
        [Action::Spawn {
            worker: 1,
            settings: Box::new(settings()),
        }]
    );
    assert_eq!(sup.spare(), Some(1));
    assert_eq!(sup.active(), None);
    assert_eq!(sup.next_deadline(), Some(t0 + START_LIMIT));
}

#[test]
fn a_ready_first_worker_starts_the_camera_as_the_spare_and_its_choice_is_kept() {
    let t0 = Instant::now();
    let (mut sup, _) = Supervisor::new(settings(), t0);
    let chosen = Chosen {
        source: "test".into(),
        encoder: "x264".into(),
        summary: "test pattern, x264".into(),
    };
    let actions = sup.handle(
        t0 + ms(900),
        Event::Worker {
            worker: 1,
            msg: FromWorker::Ready {
                protocol: peercam_wire::PROTOCOL,
                launch: "chosen".into(),
                chosen: Some(chosen.clone()),
            },
        },
    );
    assert_eq!(
        actions,
        [Action::Started {
            chosen: Some(chosen)
        }]
    );
    assert!(!sup.ended());
    assert_eq!(sup.spare(), Some(1));
    assert_eq!(sup.next_deadline(), None, "nothing to wait for");
    assert_eq!(sup.settings.capture, Capture::Launch("chosen".into()));
}

#[test]
fn the_first_worker_failing_or_exiting_fails_the_start() {
    let cases = [
        (
            Event::Worker {
                worker: 1,
                msg: FromWorker::Failed {
                    selecting: true,
                    error: "no encoder".into(),
                },
            },
            NotStarted::Select("no encoder".into()),
        ),
        (
            Event::Worker {
                worker: 1,
                msg: FromWorker::Failed {
                    selecting: false,
                    error: "no element".into(),
                },
            },
            NotStarted::Failed("no element".into()),
        ),
        (gone(1), NotStarted::Exited { worker: 1 }),
        (
            Event::SpawnFailed {
                worker: 1,
                error: "not found".into(),
            },
            NotStarted::Spawn("not found".into()),
        ),
    ];
    for (event, why) in cases {
        let t0 = Instant::now();
        let (mut sup, _) = Supervisor::new(settings(), t0);
        assert_eq!(sup.handle(t0 + ms(10), event), [Action::NotStarted(why)]);
        assert!(sup.ended());
        assert_eq!(sup.next_deadline(), None);
        assert_eq!(
            sup.handle(t0 + ms(20), ready(1)),
            [],
            "nothing after the end"
        );
    }
}

#[test]
fn the_first_worker_must_be_ready_within_the_start_limit() {
    let t0 = Instant::now();
    let (mut sup, _) = Supervisor::new(settings(), t0);
    assert_eq!(sup.handle(t0, Event::Spawned { worker: 1 }), []);
    // What comes before `Ready` is not its business yet.
    assert_eq!(sup.handle(t0 + ms(5), warm(1)), []);
    assert_eq!(sup.handle(t0 + ms(5), counts(1, 0, 0, 0)), []);
    assert_eq!(sup.handle(t0 + ms(5), Event::Prime), []);
    assert_eq!(sup.handle(t0 + START_LIMIT - ms(1), Event::Tick), []);
    assert!(!sup.ended());
    assert_eq!(
        sup.handle(t0 + START_LIMIT, Event::Tick),
        [Action::NotStarted(NotStarted::TimedOut)]
    );
    assert!(sup.ended());
}

// ---- Promotion and the next spare ----

#[test]
fn the_first_request_promotes_the_spare_and_the_next_spare_starts_later() {
    let mut rig = Rig::running();
    let actions = rig.step(ms(1000), offer(ME, "a"));
    assert_eq!(signals(&actions), [(1, ME, "a")]);
    assert_eq!(spawns(&actions), [] as [u64; 0], "no spare during the join");
    assert_eq!((rig.sup.active(), rig.sup.spare()), (Some(1), None));
    assert_eq!(rig.deadline(), Some(ms(1000) + SPARE_AFTER));
    // The same viewer's messages, and the next viewer's, go to the active worker.
    let more = rig.step(ms(1100), candidate(ME, "a"));
    assert_eq!(signals(&more), [(1, ME, "a")]);
    let answer = signal(
        ME,
        Outgoing::AnswerRequest {
            from: "b".into(),
            sdp: "v=0".into(),
        },
    );
    assert_eq!(signals(&rig.step(ms(1200), answer)), [(1, ME, "b")]);
    assert_eq!(rig.step(ms(1000) + SPARE_AFTER - ms(1), Event::Tick), []);
    let tick = rig.step(ms(1000) + SPARE_AFTER, Event::Tick);
    assert_eq!(spawns(&tick), [2]);
    let next = settings_of(&tick);
    assert_eq!(next.capture, Capture::Launch("chosen".into()));
    assert!(!next.validate, "only the first worker validates");
    assert_eq!((rig.sup.active(), rig.sup.spare()), (Some(1), Some(2)));
    assert_eq!(rig.deadline(), None);
}

#[test]
fn an_answer_request_promotes_as_an_offer_request_does() {
    let mut rig = Rig::running();
    let answer = signal(
        ME,
        Outgoing::AnswerRequest {
            from: "a".into(),
            sdp: "v=0".into(),
        },
    );
    assert_eq!(signals(&rig.step(ms(10), answer)), [(1, ME, "a")]);
    assert_eq!(rig.sup.active(), Some(1));
}

#[test]
fn the_stream_profile_the_active_worker_reports_goes_to_the_next_workers() {
    let mut rig = Rig::running();
    rig.step(ms(0), offer(ME, "a"));
    let stream = Event::Worker {
        worker: 1,
        msg: FromWorker::Stream {
            profile_level_id: "42c01f".into(),
        },
    };
    assert_eq!(rig.step(ms(100), stream), []);
    let tick = rig.step(SPARE_AFTER, Event::Tick);
    assert_eq!(settings_of(&tick).stream_profile.as_deref(), Some("42c01f"));
}

#[test]
fn signaling_without_a_peer_is_not_passed_on_and_invites_are_accepted() {
    let mut rig = Rig::running();
    for msg in [
        Outgoing::Joined {
            conversation: ME.into(),
        },
        Outgoing::NewJoined { member: "a".into() },
        Outgoing::Text {
            from: "a".into(),
            content: "hi".into(),
        },
        Outgoing::Ping,
    ] {
        assert_eq!(rig.step(ms(10), signal(ME, msg)), []);
    }
    let invite = Outgoing::Invite {
        from: "a".into(),
        conversation: "room".into(),
    };
    assert_eq!(
        rig.step(ms(10), signal(ME, invite)),
        [Action::AcceptInvite {
            from: "a".into(),
            conversation: "room".into(),
        }]
    );
    assert_eq!(rig.sup.active(), None, "nothing promoted");
}

#[test]
fn only_the_active_worker_speaks_for_the_device() {
    let mut rig = Rig::running();
    let (active, spare) = rig.serving(ms(0));
    let send = |worker| Event::Worker {
        worker,
        msg: FromWorker::Send {
            member: ME.into(),
            msg: Incoming::Join {
                conversation: "room".into(),
            },
        },
    };
    let release = |worker| Event::Worker {
        worker,
        msg: FromWorker::Release {
            member: INVITED.into(),
        },
    };
    assert_eq!(
        rig.step(ms(5000), send(active)),
        [Action::Deliver {
            member: ME.into(),
            msg: Incoming::Join {
                conversation: "room".into()
            },
        }]
    );
    assert_eq!(
        rig.step(ms(5000), release(active)),
        [Action::Release {
            member: INVITED.into()
        }]
    );
    assert_eq!(rig.step(ms(5000), send(spare)), []);
    assert_eq!(rig.step(ms(5000), release(spare)), []);
    assert_eq!(rig.step(ms(5000), counts(spare, 1, 10, 0)), []);
    let failed = Event::Worker {
        worker: spare,
        msg: FromWorker::Failed {
            selecting: false,
            error: "late".into(),
        },
    };
    assert_eq!(rig.step(ms(5000), failed), [], "only logged");
}

#[test]
fn counts_add_the_frames_encoded_since_the_last_ones() {
    let mut rig = Rig::running();
    rig.step(ms(0), offer(ME, "a"));
    let first = rig.step(ms(100), counts(1, 1, 10, 1));
    assert_eq!(
        first,
        [Action::Counts {
            counts: CameraSnapshot {
                peers: 1,
                branches: 1,
                connected: 1,
                frames: 10,
                capturing: true,
                ..Default::default()
            },
            new_frames: 10,
        }]
    );
    let second = rig.step(ms(200), counts(1, 1, 25, 1));
    assert!(matches!(
        second[..],
        [Action::Counts { new_frames: 15, .. }]
    ));
    // A count that went back adds nothing.
    let third = rig.step(ms(300), counts(1, 1, 20, 1));
    assert!(matches!(third[..], [Action::Counts { new_frames: 0, .. }]));
}

// ---- Retiring an idle active worker ----

#[test]
fn an_idle_active_worker_retires_once_the_spare_is_warm() {
    let mut rig = Rig::running();
    rig.step(ms(0), offer(ME, "a"));
    rig.step(SPARE_AFTER, Event::Tick);
    // Idle, with all it was sent handled, but no warm spare to take over.
    let idle = rig.step(ms(5000), counts(1, 0, 100, 1));
    assert!(matches!(idle[..], [Action::Counts { .. }]));
    assert_eq!(rig.sup.active(), Some(1));
    // Warm from another worker than the spare changes nothing.
    assert_eq!(rig.step(ms(5100), warm(7)), []);
    assert_eq!(rig.step(ms(5200), warm(2)), [Action::Stop { worker: 1 }]);
    assert_eq!((rig.sup.active(), rig.sup.spare()), (None, Some(2)));
    assert_eq!(rig.deadline(), None);
    // Its exit is expected.
    assert_eq!(rig.step(ms(5300), gone(1)), []);
    // The next request promotes the warm spare.
    assert_eq!(signals(&rig.step(ms(6000), offer(ME, "b"))), [(2, ME, "b")]);
}

#[test]
fn an_active_worker_with_messages_unhandled_or_peers_left_is_not_retired() {
    let mut rig = Rig::running();
    let (active, spare) = rig.serving(ms(0));
    // Still serving.
    let serving = rig.step(ms(5000), counts(active, 1, 100, 1));
    assert!(matches!(serving[..], [Action::Counts { .. }]));
    // No peer, but a viewer's message is on its way to it (sent 2, handled 1).
    rig.step(ms(5100), candidate(ME, "b"));
    let behind = rig.step(ms(5200), counts(active, 0, 100, 1));
    assert!(matches!(behind[..], [Action::Counts { .. }]));
    assert_eq!(rig.sup.active(), Some(active));
    // Its counts caught up.
    let caught_up = rig.step(ms(5300), counts(active, 0, 100, 2));
    assert!(matches!(
        caught_up[..],
        [Action::Counts { .. }, Action::Stop { worker }] if worker == active
    ));
    assert_eq!((rig.sup.active(), rig.sup.spare()), (None, Some(spare)));
}

// ---- Priming ----

#[test]
fn priming_asks_the_spare_once_and_never_while_a_worker_serves() {
    let mut rig = Rig::running();
    assert_eq!(
        rig.step(ms(10), Event::Prime),
        [Action::Prime { worker: 1 }]
    );
    assert_eq!(rig.step(ms(20), Event::Prime), [], "once");
    let (_, spare) = rig.serving(ms(100));
    assert_eq!(rig.sup.spare(), Some(spare));
    assert_eq!(rig.step(ms(5000), Event::Prime), [], "a worker serves");
}

#[test]
fn a_primed_spare_nobody_used_is_replaced_after_prime_life() {
    let mut rig = Rig::running();
    rig.step(ms(1000), Event::Prime);
    assert_eq!(rig.deadline(), Some(ms(1000) + PRIME_LIFE));
    assert_eq!(rig.step(ms(1000) + PRIME_LIFE - ms(1), Event::Tick), []);
    let tick = rig.step(ms(1000) + PRIME_LIFE, Event::Tick);
    // The primed worker stands in as an idle active worker; a fresh spare starts at once.
    assert_eq!(spawns(&tick), [2]);
    assert_eq!((rig.sup.active(), rig.sup.spare()), (Some(1), Some(2)));
    // Once the fresh spare is warm, the primed one exits like any idle worker.
    assert_eq!(
        rig.step(ms(2000) + PRIME_LIFE, warm(2)),
        [Action::Stop { worker: 1 }]
    );
    // The fresh spare can be primed.
    assert_eq!(
        rig.step(ms(3000) + PRIME_LIFE, Event::Prime),
        [Action::Prime { worker: 2 }]
    );
}

#[test]
fn a_primed_spare_that_is_used_is_not_replaced() {
    let mut rig = Rig::running();
    rig.step(ms(0), Event::Prime);
    rig.step(ms(100), offer(ME, "a"));
    rig.step(ms(100) + SPARE_AFTER, Event::Tick);
    assert_eq!(rig.step(PRIME_LIFE, Event::Tick), []);
    assert_eq!((rig.sup.active(), rig.sup.spare()), (Some(1), Some(2)));
}

// ---- Crashes and back-off ----

#[test]
fn an_active_worker_dying_ends_the_broadcast_and_the_rooms() {
    let mut rig = Rig::running();
    rig.step(ms(0), offer(ME, "a"));
    let actions = rig.step(ms(2000), gone(1));
    assert_eq!(
        actions,
        [
            Action::Reap {
                worker: 1,
                spare: false,
            },
            Action::Counts {
                counts: CameraSnapshot::default(),
                new_frames: 0,
            },
            Action::EndBroadcast,
        ]
    );
    assert_eq!((rig.sup.active(), rig.sup.spare()), (None, None));
    // It died young: the next one waits.
    assert_eq!(rig.deadline(), Some(ms(2000) + RESPAWN_DELAY));
    assert_eq!(rig.step(ms(2000) + RESPAWN_DELAY - ms(1), Event::Tick), []);
    assert_eq!(
        spawns(&rig.step(ms(2000) + RESPAWN_DELAY, Event::Tick)),
        [2]
    );
}

#[test]
fn young_deaths_in_a_row_double_the_wait_up_to_the_limit() {
    let mut rig = Rig::running();
    let mut now = ms(0);
    let mut spare = 1;
    let mut waits = Vec::new();
    for _ in 0..9 {
        let actions = rig.step(now, gone(spare));
        assert_eq!(
            actions,
            [Action::Reap {
                worker: spare,
                spare: true,
            }]
        );
        let wait = rig.deadline().expect("a spare is due") - now;
        waits.push(wait);
        now += wait;
        let tick = rig.step(now, Event::Tick);
        spare = spawns(&tick)[0];
    }
    let secs = |s: f64| Duration::from_secs_f64(s);
    assert_eq!(
        waits,
        [
            secs(0.5),
            secs(1.0),
            secs(2.0),
            secs(4.0),
            secs(8.0),
            secs(16.0),
            MAX_RESPAWN_DELAY,
            MAX_RESPAWN_DELAY,
            MAX_RESPAWN_DELAY,
        ]
    );
}

#[test]
fn a_young_active_worker_dying_doubles_the_wait_too() {
    let mut rig = Rig::running();
    rig.step(ms(0), gone(1)); // waits 0.5 s
    rig.step(ms(500), Event::Tick); // worker 2
    rig.step(ms(600), offer(ME, "a"));
    rig.step(ms(700), gone(2));
    assert_eq!(rig.deadline(), Some(ms(700) + 2 * RESPAWN_DELAY));
}

#[test]
fn a_worker_that_lived_healthy_life_resets_the_wait() {
    let mut rig = Rig::running();
    rig.step(ms(0), gone(1)); // waits 0.5 s
    rig.step(ms(500), Event::Tick); // worker 2
    rig.step(ms(600), gone(2)); // waits 1 s
    rig.step(ms(1600), Event::Tick); // worker 3, started at 1.6 s
    rig.step(ms(2000), offer(ME, "a"));
    // It served for longer than a healthy life: its replacement starts at once.
    let death = ms(1600) + HEALTHY_LIFE;
    let actions = rig.step(death, gone(3));
    assert!(actions.contains(&Action::EndBroadcast));
    assert_eq!(spawns(&actions), [4]);
    // And the next failure waits the first wait again.
    rig.step(death + ms(100), gone(4));
    assert_eq!(rig.deadline(), Some(death + ms(100) + RESPAWN_DELAY));
}

#[test]
fn retiring_a_worker_that_lived_healthy_life_resets_the_wait() {
    let mut rig = Rig::running();
    rig.step(ms(0), gone(1)); // waits 0.5 s
    rig.step(ms(500), Event::Tick); // worker 2
    rig.step(ms(600), gone(2)); // waits 1 s, then 2 s
    rig.step(ms(1600), Event::Tick); // worker 3, started at 1.6 s
    let (active, _) = rig.serving(ms(2000));
    assert_eq!(active, 3);
    let retired = rig.step(ms(1600) + HEALTHY_LIFE, counts(3, 0, 10, 1));
    assert!(retired.contains(&Action::Stop { worker: 3 }));
    let spare = rig.sup.spare().expect("the warm spare");
    let now = ms(1700) + HEALTHY_LIFE;
    rig.step(now, gone(spare));
    assert_eq!(rig.deadline(), Some(now + RESPAWN_DELAY));
}

#[test]
fn retiring_a_young_worker_keeps_the_wait() {
    let mut rig = Rig::running();
    rig.step(ms(0), gone(1)); // waits 0.5 s, then 1 s
    rig.step(ms(500), Event::Tick); // worker 2
    let (active, spare) = rig.serving(ms(600));
    let retired = rig.step(ms(5000), counts(active, 0, 10, 1));
    assert!(retired.contains(&Action::Stop { worker: active }));
    rig.step(ms(5100), gone(spare));
    assert_eq!(rig.deadline(), Some(ms(5100) + 2 * RESPAWN_DELAY));
}

#[test]
fn a_worker_that_cannot_be_started_is_waited_for_like_one_that_died() {
    let mut rig = Rig::running();
    rig.step(ms(0), offer(ME, "a"));
    let tick = rig.raw(SPARE_AFTER, Event::Tick);
    assert_eq!(spawns(&tick), [2]);
    let failed = Event::SpawnFailed {
        worker: 2,
        error: "no such file".into(),
    };
    assert_eq!(rig.raw(SPARE_AFTER, failed), []);
    assert_eq!(rig.sup.spare(), None);
    assert_eq!(rig.deadline(), Some(SPARE_AFTER + RESPAWN_DELAY));
    assert_eq!(
        spawns(&rig.step(SPARE_AFTER + RESPAWN_DELAY, Event::Tick)),
        [3]
    );
}

#[test]
fn a_request_for_a_worker_that_cannot_be_started_waits_for_the_next() {
    let mut rig = Rig::running();
    rig.step(ms(0), gone(1)); // waits 0.5 s
    let actions = rig.raw(ms(600), offer(ME, "a"));
    assert_eq!(spawns(&actions), [2]);
    assert_eq!(signals(&actions), [(2, ME, "a")]);
    let failed = Event::SpawnFailed {
        worker: 2,
        error: "no such file".into(),
    };
    assert_eq!(rig.raw(ms(600), failed), []);
    assert_eq!((rig.sup.active(), rig.sup.spare()), (None, None));
    assert_eq!(rig.deadline(), Some(ms(600) + 2 * RESPAWN_DELAY));
    let tick = rig.step(ms(600) + 2 * RESPAWN_DELAY, Event::Tick);
    assert_eq!(spawns(&tick), [3]);
    assert_eq!(signals(&tick), [(3, ME, "a")]);
}

#[test]
fn what_a_started_worker_was_sent_is_not_sent_again() {
    let mut rig = Rig::running();
    rig.step(ms(0), gone(1));
    let actions = rig.step(ms(600), offer(ME, "a"));
    assert_eq!(signals(&actions), [(2, ME, "a")]);
    // A later death is a crash, not a failed start: nothing is replayed.
    let died = rig.step(ms(700), gone(2));
    assert!(died.contains(&Action::EndBroadcast));
    assert_eq!(signals(&died), []);
}

// ---- Peers waiting for a worker ----

/// A running rig whose only worker died at time zero: none until [`RESPAWN_DELAY`].
fn without_worker() -> Rig {
    let mut rig = Rig::running();
    rig.step(ms(0), offer(ME, "x"));
    rig.step(ms(0), gone(1));
    rig
}

#[test]
fn requests_while_no_worker_wait_and_the_next_worker_serves_them_in_order() {
    let mut rig = without_worker();
    assert_eq!(rig.step(ms(100), offer(ME, "a")), []);
    assert_eq!(rig.step(ms(110), candidate(ME, "a")), []);
    assert_eq!(rig.step(ms(120), offer(INVITED, "b")), []);
    assert_eq!(rig.step(ms(130), candidate(INVITED, "b")), []);
    // About no waiting peer: dropped.
    assert_eq!(rig.step(ms(140), candidate(ME, "c")), []);
    assert_eq!(rig.step(ms(150), candidate(INVITED, "a")), []);
    assert_eq!(rig.deadline(), Some(RESPAWN_DELAY));
    let tick = rig.step(RESPAWN_DELAY, Event::Tick);
    assert_eq!(spawns(&tick), [2]);
    assert_eq!(
        signals(&tick),
        [
            (2, ME, "a"),
            (2, ME, "a"),
            (2, INVITED, "b"),
            (2, INVITED, "b")
        ]
    );
    assert_eq!((rig.sup.active(), rig.sup.spare()), (Some(2), None));
    // Served like any first peer: the next spare a little later.
    assert_eq!(rig.deadline(), Some(RESPAWN_DELAY + SPARE_AFTER));
}

#[test]
fn a_peer_who_leaves_while_waiting_is_forgotten() {
    let mut rig = without_worker();
    rig.step(ms(100), offer(ME, "a"));
    rig.step(ms(110), offer(ME, "b"));
    rig.step(ms(120), candidate(ME, "a"));
    // Another peer of the same member still waits: the member stays.
    assert_eq!(rig.step(ms(130), left(ME, "a")), []);
    // Its messages are now about nobody waiting.
    assert_eq!(rig.step(ms(140), candidate(ME, "a")), []);
    let tick = rig.step(RESPAWN_DELAY, Event::Tick);
    assert_eq!(signals(&tick), [(2, ME, "b")]);
}

#[test]
fn an_invited_member_whose_last_waiting_peer_leaves_leaves_its_room() {
    let mut rig = without_worker();
    rig.step(ms(100), offer(INVITED, "a"));
    rig.step(ms(110), offer(ME, "b"));
    assert_eq!(
        rig.step(ms(120), left(INVITED, "a")),
        [Action::Release {
            member: INVITED.into()
        }]
    );
    let tick = rig.step(RESPAWN_DELAY, Event::Tick);
    assert_eq!(signals(&tick), [(2, ME, "b")]);
}

#[test]
fn an_ended_or_refused_member_forgets_its_waiting_peers() {
    for msg in [
        Outgoing::End {
            from: "a".into(),
            conversation: "room".into(),
        },
        Outgoing::Error {
            code: ErrorCode::ConversationNotFound,
            message: "gone".into(),
        },
    ] {
        let mut rig = without_worker();
        rig.step(ms(100), offer(INVITED, "a"));
        rig.step(ms(110), offer(ME, "b"));
        assert_eq!(
            rig.step(ms(120), signal(INVITED, msg)),
            [Action::Release {
                member: INVITED.into()
            }]
        );
        let tick = rig.step(RESPAWN_DELAY, Event::Tick);
        assert_eq!(signals(&tick), [(2, ME, "b")]);
    }
}

#[test]
fn at_most_max_waiting_messages_wait_and_the_oldest_go_first() {
    let mut rig = without_worker();
    for n in 0..=MAX_WAITING {
        assert_eq!(rig.step(ms(100), offer(ME, &format!("p{n}"))), []);
    }
    let tick = rig.step(RESPAWN_DELAY, Event::Tick);
    let served = signals(&tick);
    assert_eq!(served.len(), MAX_WAITING);
    assert_eq!(served[0], (2, ME, "p1"));
    let last = format!("p{MAX_WAITING}");
    assert_eq!(served[MAX_WAITING - 1], (2, ME, last.as_str()));
}

#[test]
fn waiting_peers_are_served_as_soon_as_a_worker_is_free() {
    // A request promoted the spare started when the wait ran out, before the tick that
    // serves those who waited: they are served once that worker retires.
    let mut rig = without_worker();
    rig.step(ms(100), offer(ME, "a"));
    let actions = rig.step(RESPAWN_DELAY, offer(ME, "b"));
    assert_eq!(signals(&actions), [(2, ME, "b")]);
    let tick = rig.step(RESPAWN_DELAY + SPARE_AFTER, Event::Tick);
    assert_eq!(spawns(&tick), [3]);
    rig.step(ms(4000), warm(3));
    let retired = rig.step(ms(5000), counts(2, 0, 10, 1));
    assert!(retired.contains(&Action::Stop { worker: 2 }));
    assert_eq!(rig.deadline(), Some(ms(5000)), "at once");
    let tick = rig.step(ms(5000), Event::Tick);
    assert_eq!(signals(&tick), [(3, ME, "a")]);
}

// ---- Stopping ----

#[test]
fn stopping_leaves_the_broadcast_and_stops_both_workers() {
    let mut rig = Rig::running();
    let (active, spare) = rig.serving(ms(0));
    assert_eq!(
        rig.step(ms(5000), Event::Stop),
        [
            Action::Close,
            Action::Stop { worker: active },
            Action::Stop { worker: spare },
        ]
    );
    assert!(rig.sup.ended());
    assert_eq!(rig.deadline(), None);
    assert_eq!((rig.sup.active(), rig.sup.spare()), (None, None));
    assert_eq!(rig.step(ms(5100), gone(active)), []);
    assert_eq!(rig.step(ms(5100), offer(ME, "b")), []);
    assert_eq!(rig.step(ms(5100), Event::Tick), []);
}

#[test]
fn stopping_with_only_a_spare_stops_it() {
    let mut rig = Rig::running();
    assert_eq!(
        rig.step(ms(10), Event::Stop),
        [Action::Close, Action::Stop { worker: 1 }]
    );
}

// ---- Still pictures ----

const SPEC: SnapshotSpec = SnapshotSpec {
    size: Some((640, 360)),
    quality: 85,
};

fn snapshot(id: u64) -> Event {
    Event::Snapshot { id, spec: SPEC }
}

fn asked(worker: u64, id: u64) -> Action {
    Action::Snapshot {
        worker,
        id,
        spec: SPEC,
    }
}

fn picture(worker: u64, id: u64, result: Result<Jpeg, String>) -> Event {
    Event::Worker {
        worker,
        msg: FromWorker::Snapshot { id, result },
    }
}

fn jpeg() -> Jpeg {
    Jpeg(vec![0xff, 0xd8, 0xff, 0xd9])
}

/// A worker's counts with no peer: capturing (for a picture) or not.
fn no_peer(worker: u64, capturing: bool, handled: u64) -> Event {
    Event::Worker {
        worker,
        msg: FromWorker::Stats {
            stats: CameraSnapshot {
                capturing,
                ..Default::default()
            },
            handled,
        },
    }
}

fn refused(id: u64, why: &str) -> Action {
    Action::Snapshotted {
        id,
        result: Err(why.to_owned()),
    }
}

#[test]
fn a_picture_nobody_watches_promotes_the_spare_which_retires_once_idle() {
    let mut rig = Rig::running();
    assert_eq!(rig.step(ms(100), snapshot(7)), [asked(1, 7)]);
    assert_eq!((rig.sup.active(), rig.sup.spare()), (Some(1), None));
    // As after a viewer's first request: the next spare a little later.
    assert_eq!(rig.deadline(), Some(ms(100) + SPARE_AFTER));
    // Capturing for the picture: not idle.
    let capturing = rig.step(ms(150), no_peer(1, true, 0));
    assert!(matches!(capturing[..], [Action::Counts { .. }]));
    assert_eq!(
        rig.step(ms(300), picture(1, 7, Ok(jpeg()))),
        [Action::Snapshotted {
            id: 7,
            result: Ok(jpeg())
        }]
    );
    // Idle, all answered, but no warm spare yet: it stays, and takes the next picture.
    let idle = rig.step(ms(310), no_peer(1, false, 1));
    assert!(matches!(idle[..], [Action::Counts { .. }]));
    assert_eq!(rig.step(ms(1000), snapshot(8)), [asked(1, 8)]);
    rig.step(ms(1200), picture(1, 8, Ok(jpeg())));
    rig.step(ms(1210), no_peer(1, false, 2));
    let tick = rig.step(ms(100) + SPARE_AFTER, Event::Tick);
    assert_eq!(spawns(&tick), [2]);
    assert_eq!(rig.step(ms(4000), warm(2)), [Action::Stop { worker: 1 }]);
    assert_eq!((rig.sup.active(), rig.sup.spare()), (None, Some(2)));
}

#[test]
fn a_picture_while_someone_watches_is_taken_by_the_active_worker() {
    let mut rig = Rig::running();
    let (active, spare) = rig.serving(ms(0));
    let actions = rig.step(ms(5000), snapshot(1));
    assert_eq!(actions, [asked(active, 1)]);
    assert_eq!(
        (rig.sup.active(), rig.sup.spare()),
        (Some(active), Some(spare))
    );
    assert_eq!(
        rig.step(ms(5100), picture(active, 1, Ok(jpeg()))),
        [Action::Snapshotted {
            id: 1,
            result: Ok(jpeg())
        }]
    );
}

#[test]
fn an_active_worker_is_not_retired_with_a_picture_in_flight() {
    let mut rig = Rig::running();
    let (active, spare) = rig.serving(ms(0));
    rig.step(ms(5000), snapshot(1));
    // Its viewer left and it has handled the viewer's request, but not the picture.
    let behind = rig.step(ms(5010), no_peer(active, false, 1));
    assert!(matches!(behind[..], [Action::Counts { .. }]));
    assert_eq!(rig.sup.active(), Some(active));
    // A failed picture is an answer too.
    let why = "the camera delivered no picture within 4 s".to_owned();
    assert_eq!(
        rig.step(ms(5020), picture(active, 1, Err(why.clone()))),
        [Action::Snapshotted {
            id: 1,
            result: Err(why)
        }]
    );
    let caught_up = rig.step(ms(5030), no_peer(active, false, 2));
    assert!(matches!(
        caught_up[..],
        [Action::Counts { .. }, Action::Stop { worker }] if worker == active
    ));
    assert_eq!((rig.sup.active(), rig.sup.spare()), (None, Some(spare)));
}

#[test]
fn only_the_active_worker_answers_and_only_what_it_was_asked() {
    let mut rig = Rig::running();
    let (active, spare) = rig.serving(ms(0));
    rig.step(ms(5000), snapshot(1));
    assert_eq!(rig.step(ms(5010), picture(spare, 1, Ok(jpeg()))), []);
    assert_eq!(rig.step(ms(5010), picture(active, 2, Ok(jpeg()))), []);
    let answered = rig.step(ms(5020), picture(active, 1, Ok(jpeg())));
    assert_eq!(answered.len(), 1);
    assert_eq!(
        rig.step(ms(5030), picture(active, 1, Ok(jpeg()))),
        [],
        "once"
    );
}

#[test]
fn a_picture_is_refused_at_once_while_the_camera_starts_or_no_worker_can_run() {
    let t0 = Instant::now();
    let (mut sup, _) = Supervisor::new(settings(), t0);
    assert_eq!(
        sup.handle(t0 + ms(5), snapshot(1)),
        [refused(1, snapshots::STARTING)]
    );
    // The only worker died young: the next waits out the back-off, and a picture does not.
    let mut rig = Rig::running();
    rig.step(ms(0), gone(1));
    assert_eq!(
        rig.step(ms(100), snapshot(2)),
        [refused(2, snapshots::NO_WORKER)]
    );
    assert_eq!(rig.deadline(), Some(RESPAWN_DELAY), "nothing else waits");
}

#[test]
fn a_picture_in_flight_is_refused_when_its_worker_dies_fails_to_start_or_stops() {
    // Dies.
    let mut rig = Rig::running();
    rig.step(ms(0), snapshot(1));
    let died = rig.step(ms(100), gone(1));
    assert!(
        died.contains(&refused(1, snapshots::WORKER_DIED)),
        "{died:?}"
    );
    // Cannot be started: the picture is not kept for the next worker.
    let mut rig = Rig::running();
    rig.step(ms(0), gone(1));
    let actions = rig.raw(ms(600), snapshot(2));
    assert_eq!(spawns(&actions), [2]);
    assert!(actions.contains(&asked(2, 2)), "{actions:?}");
    let failed = Event::SpawnFailed {
        worker: 2,
        error: "no such file".into(),
    };
    assert_eq!(
        rig.raw(ms(600), failed),
        [refused(2, snapshots::WORKER_FAILED)]
    );
    let tick = rig.step(ms(600) + 2 * RESPAWN_DELAY, Event::Tick);
    assert_eq!(spawns(&tick), [3]);
    assert!(!tick.iter().any(|a| matches!(a, Action::Snapshot { .. })));
    // Stops.
    let mut rig = Rig::running();
    rig.step(ms(0), snapshot(3));
    let stopped = rig.step(ms(100), Event::Stop);
    assert_eq!(
        stopped,
        [
            Action::Close,
            refused(3, snapshots::STOPPING),
            Action::Stop { worker: 1 }
        ]
    );
}

#[test]
fn talk_goes_to_the_active_worker_and_without_one_is_answered_unavailable() {
    let mut rig = Rig::running();
    let talk = |start| Outgoing::Talk {
        from: "v".into(),
        start,
    };
    let out = rig.step(ms(10), signal(ME, talk(true)));
    match out.as_slice() {
        [Action::Deliver {
            member,
            msg:
                Incoming::TalkState {
                    to,
                    state: TalkState::Unavailable,
                    message,
                },
        }] => {
            assert_eq!((member.as_str(), to.as_str()), (ME, "v"));
            assert!(message.contains("not connected to you"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(rig.sup.active(), None, "asking to talk starts no worker");
    assert_eq!(rig.step(ms(10), signal(ME, talk(false))), []);

    let (active, _) = rig.serving(ms(20));
    let out = rig.step(ms(30), signal(ME, talk(true)));
    assert!(
        matches!(
            out.as_slice(),
            [Action::Signal { worker, msg: Outgoing::Talk { start: true, .. }, .. }] if *worker == active
        ),
        "{out:?}"
    );
}
