//! Which viewers watch the small encode ([`crate::small`]) instead of the main one, and at
//! what rate it runs.
//!
//! A viewer whose link takes much less than the group's rate (its estimate from
//! [`crate::bitrate`] under [`DOWN_SHARE`] of it for [`DOWN_AFTER`]) moves to the small
//! encode: the main stream does not fit its link, and retransmitting what does not fit only
//! adds to it. It moves back once its estimate has stayed at [`UP_SHARE`] of the group's
//! rate (what the main encode needs, not counted as a poor link) for its recovery hold.
//!
//! When every viewer left on the main encode has gone, those on the small one move back at
//! once: the main encode then runs at their rate, and the small one stops.
//!
//! Not flapping: the two thresholds are far apart, each must hold for a while, and a viewer
//! that moves back and is moved down again within [`FAILED_RETURN`] (its link could not take
//! the main stream after all: its estimate grew on the small stream, which does not test the
//! link's capacity) waits twice as long before its next try, up to [`MAX_RECOVERY_HOLD`].
//!
//! The small encode runs at the lowest estimate of its viewers, between [`SMALL_FLOOR_SHARE`]
//! and [`SMALL_SHARE`] of the configured rate; it is told only of a change of
//! [`crate::bitrate::MIN_CHANGE`] or more, at most once per [`crate::bitrate::MIN_INTERVAL`].
//!
//! Pure: time and the estimates are passed in; the worker's glue (worker/rate.rs) moves the
//! viewers and sets the encoders.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use crate::bitrate::{MIN_CHANGE, MIN_INTERVAL};

/// A viewer moves to the small encode when its estimate is under this share of the group's
/// rate (a poor link in [`crate::bitrate`]'s terms is under 95 %: this is well under).
pub const DOWN_SHARE: f64 = 0.70;

/// How long the estimate must stay under [`DOWN_SHARE`] before the viewer moves: one more
/// receiver report. Getting under it already takes a couple of reports of heavy loss (each
/// takes off half the loss it reports), and every second on a link that cannot take the main
/// stream is a second of frozen picture for a viewer joining on it (`cargo bench --bench loss
/// -- --mixed` measures that viewer from its first frame).
pub const DOWN_AFTER: Duration = Duration::from_secs(1);

/// A viewer on the small encode moves back when its estimate is at least this share of the
/// group's rate: as good as the others' (not a poor link).
pub const UP_SHARE: f64 = 0.95;

/// How long the estimate must stay over [`UP_SHARE`] before the first move back.
pub const RECOVERY_HOLD: Duration = Duration::from_secs(10);

/// The longest a viewer's recovery hold grows to after failed returns.
pub const MAX_RECOVERY_HOLD: Duration = Duration::from_secs(80);

/// A viewer moved down again this soon after moving back failed its return.
pub const FAILED_RETURN: Duration = Duration::from_secs(30);

/// The small encode's highest rate, a share of the configured one: its picture has about a
/// third of the main one's pixels (640x360 of 1280x720).
pub const SMALL_SHARE: f64 = 0.35;

/// The small encode's lowest rate, a share of the configured one (the group's floor, see
/// [`crate::bitrate::FLOOR_SHARE`]: the estimates go no lower).
pub const SMALL_FLOOR_SHARE: f64 = 0.20;

/// A viewer's move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    /// To the small encode.
    ToSmall,
    /// Back to the main encode.
    ToMain,
}

/// One viewer's place and the times that decide its next move.
#[derive(Debug, Clone, Copy)]
struct Place {
    /// It watches the small encode.
    small: bool,
    /// Since when the condition for its next move has held.
    since: Option<Instant>,
    /// When it last moved back to the main encode.
    returned_at: Option<Instant>,
    /// How long it must look recovered before it moves back.
    hold: Duration,
}

impl Default for Place {
    fn default() -> Place {
        Place {
            small: false,
            since: None,
            returned_at: None,
            hold: RECOVERY_HOLD,
        }
    }
}

/// The viewers' places: see the module comment.
#[derive(Debug)]
pub struct SmallPolicy<K> {
    /// The configured rate, bits/s.
    configured: f64,
    /// Each viewer's place; a viewer not here watches the main encode.
    places: HashMap<K, Place>,
    /// What the small encode was last told, bits/s, and when.
    applied: Option<(u32, Instant)>,
}

impl<K: Eq + Hash + Clone> SmallPolicy<K> {
    /// No viewer on the small encode yet; `configured` is the main encode's configured rate.
    pub fn new(configured: u32) -> SmallPolicy<K> {
        SmallPolicy {
            configured: f64::from(configured.max(1)),
            places: HashMap::new(),
            applied: None,
        }
    }

    /// The moves to make now, given each viewer's `estimates` (bits/s) and the `group`'s rate
    /// (what the main encode's viewers take, bits/s; `None` when no viewer is left on it).
    /// The moves are taken as made.
    pub fn decide(
        &mut self,
        estimates: &[(K, u32)],
        group: Option<u32>,
        now: Instant,
    ) -> Vec<(K, Move)> {
        let Some(group) = group else {
            return self.all_back(estimates);
        };
        let group = f64::from(group.max(1));
        let mut moves = Vec::new();
        for (key, estimate) in estimates {
            let place = self.places.entry(key.clone()).or_default();
            let share = f64::from(*estimate) / group;
            let wants = if place.small {
                share >= UP_SHARE
            } else {
                share < DOWN_SHARE
            };
            if !wants {
                place.since = None;
                continue;
            }
            let since = *place.since.get_or_insert(now);
            let wait = if place.small { place.hold } else { DOWN_AFTER };
            if now.saturating_duration_since(since) < wait {
                continue;
            }
            place.since = None;
            place.small = !place.small;
            if place.small {
                let failed = place
                    .returned_at
                    .is_some_and(|at| now.saturating_duration_since(at) < FAILED_RETURN);
                place.hold = if failed {
                    (place.hold * 2).min(MAX_RECOVERY_HOLD)
                } else {
                    RECOVERY_HOLD
                };
                moves.push((key.clone(), Move::ToSmall));
            } else {
                place.returned_at = Some(now);
                moves.push((key.clone(), Move::ToMain));
            }
        }
        moves
    }

    /// Nobody is left on the main encode: every viewer on the small one moves back at once,
    /// the main encode's rate then being theirs to set (a group of poor links is followed, see
    /// [`crate::bitrate`]) and the small encode no longer needed. Not a return that tested
    /// their links: it does not count as one.
    fn all_back(&mut self, estimates: &[(K, u32)]) -> Vec<(K, Move)> {
        let mut moves = Vec::new();
        for (key, _) in estimates {
            if let Some(place) = self.places.get_mut(key).filter(|p| p.small) {
                *place = Place::default();
                moves.push((key.clone(), Move::ToMain));
            }
        }
        moves
    }

    /// Whether `viewer` watches the small encode.
    pub fn is_small(&self, viewer: &K) -> bool {
        self.places.get(viewer).is_some_and(|p| p.small)
    }

    /// Viewers on the small encode.
    pub fn small_viewers(&self) -> usize {
        self.places.values().filter(|p| p.small).count()
    }

    /// A viewer left.
    pub fn remove(&mut self, viewer: &K) {
        self.places.remove(viewer);
    }

    /// The rate the small encode should have now, bits/s: the lowest estimate of its viewers
    /// (`estimates` may hold every viewer's), kept between its floor and its highest rate.
    pub fn small_target(&self, estimates: &[(K, u32)]) -> u32 {
        let lowest = estimates
            .iter()
            .filter(|(k, _)| self.is_small(k))
            .map(|(_, e)| f64::from(*e))
            .fold(f64::INFINITY, f64::min);
        let (floor, top) = (
            self.configured * SMALL_FLOOR_SHARE,
            self.configured * SMALL_SHARE,
        );
        lowest.clamp(floor, top).round() as u32
    }

    /// The rate to tell the small encode now, when it should be told one: the first time,
    /// and then on a change of [`MIN_CHANGE`] or more, at most once per [`MIN_INTERVAL`].
    pub fn poll_rate(&mut self, estimates: &[(K, u32)], now: Instant) -> Option<u32> {
        let target = self.small_target(estimates);
        if let Some((applied, at)) = self.applied {
            let moved = (f64::from(target) - f64::from(applied)).abs() / f64::from(applied.max(1))
                >= MIN_CHANGE;
            if !moved || now.saturating_duration_since(at) < MIN_INTERVAL {
                return None;
            }
        }
        self.applied = Some((target, now));
        Some(target)
    }

    /// The small encode stopped: its next start is told its rate afresh.
    pub fn small_stopped(&mut self) {
        self.applied = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIGURED: u32 = 1_500_000;

    /// Runs `decide` once a second for `secs` seconds from `t` with these estimates; the moves
    /// made, with the second they were made in (1-based), and the time after.
    fn run(
        p: &mut SmallPolicy<&'static str>,
        estimates: &[(&'static str, u32)],
        group: u32,
        t: Instant,
        secs: u64,
    ) -> (Vec<(u64, &'static str, Move)>, Instant) {
        let mut now = t;
        let mut moves = Vec::new();
        for s in 1..=secs {
            now += Duration::from_secs(1);
            for (k, m) in p.decide(estimates, Some(group), now) {
                moves.push((s, k, m));
            }
        }
        (moves, now)
    }

    #[test]
    fn a_viewer_well_under_the_group_moves_to_the_small_encode_after_a_while() {
        let mut p = SmallPolicy::new(CONFIGURED);
        let t = Instant::now();
        let est = [("near", CONFIGURED), ("capped", 600_000)];
        let (moves, _) = run(&mut p, &est, CONFIGURED, t, 10);
        // Under the threshold from the first second: moved once it held for DOWN_AFTER.
        assert_eq!(
            moves,
            vec![(1 + DOWN_AFTER.as_secs(), "capped", Move::ToSmall)]
        );
        assert!(p.is_small(&"capped") && !p.is_small(&"near"));
        assert_eq!(p.small_viewers(), 1);
    }

    #[test]
    fn a_viewer_a_little_under_the_group_or_briefly_under_stays() {
        let mut p = SmallPolicy::new(CONFIGURED);
        let t = Instant::now();
        // 80 % of the group: a poor link, repaired, not worth a second picture.
        let (moves, t) = run(&mut p, &[("a", 1_200_000)], CONFIGURED, t, 20);
        assert!(moves.is_empty(), "{moves:?}");
        // Under for one report, then back: the clock starts again.
        let (moves, t) = run(
            &mut p,
            &[("a", 500_000)],
            CONFIGURED,
            t,
            DOWN_AFTER.as_secs(),
        );
        assert!(moves.is_empty());
        let (moves, t) = run(&mut p, &[("a", 1_400_000)], CONFIGURED, t, 1);
        assert!(moves.is_empty());
        let (moves, _) = run(
            &mut p,
            &[("a", 500_000)],
            CONFIGURED,
            t,
            DOWN_AFTER.as_secs(),
        );
        assert!(moves.is_empty(), "{moves:?}");
    }

    #[test]
    fn a_viewer_moves_back_once_recovered_for_the_hold_and_not_on_the_way_up() {
        let mut p = SmallPolicy::new(CONFIGURED);
        let t = Instant::now();
        let (_, t) = run(&mut p, &[("a", 400_000)], CONFIGURED, t, 5);
        assert!(p.is_small(&"a"));
        // Between the thresholds: stays where it is.
        let (moves, t) = run(&mut p, &[("a", 1_200_000)], CONFIGURED, t, 30);
        assert!(moves.is_empty(), "{moves:?}");
        // Recovered: back after the hold, once.
        let (moves, _) = run(&mut p, &[("a", 1_450_000)], CONFIGURED, t, 20);
        assert_eq!(moves, vec![(11, "a", Move::ToMain)]);
        assert!(!p.is_small(&"a"));
    }

    #[test]
    fn a_failed_return_doubles_the_wait_before_the_next_one() {
        // Each round: the link cannot take the main stream (moved down after DOWN_AFTER), its
        // estimate grows on the small one (moved back after the hold), and, `on_main` seconds
        // after the return, it cannot take it again. The second of the round's return is the
        // hold it waited.
        let rounds = |on_main: u64| {
            let mut p = SmallPolicy::new(CONFIGURED);
            let mut t = Instant::now();
            let mut holds = Vec::new();
            let down = 1 + DOWN_AFTER.as_secs();
            for _ in 0..5 {
                let (moves, after) = run(&mut p, &[("a", 400_000)], CONFIGURED, t, down);
                assert_eq!(moves, vec![(down, "a", Move::ToSmall)]);
                let (moves, after) = run(&mut p, &[("a", 1_500_000)], CONFIGURED, after, 100);
                holds.push(moves[0].0);
                // Back to when it returned, then on the main encode for a while.
                t = after - Duration::from_secs(100 - moves[0].0);
                let (_, after) = run(&mut p, &[("a", 1_500_000)], CONFIGURED, t, on_main);
                t = after;
            }
            holds
        };
        // Down again soon after each return: 10, 20, 40, 80, 80 s.
        assert_eq!(rounds(0), vec![11, 21, 41, 81, 81]);
        // A return that lasted longer than FAILED_RETURN was a good one: the hold starts over.
        assert_eq!(rounds(40), vec![11, 11, 11, 11, 11]);
    }

    #[test]
    fn when_nobody_is_left_on_the_main_encode_the_small_ones_move_back_at_once() {
        let mut p = SmallPolicy::new(CONFIGURED);
        let t = Instant::now();
        let est = [("near", CONFIGURED), ("a", 400_000), ("b", 500_000)];
        let (_, t) = run(&mut p, &est, CONFIGURED, t, 5);
        assert_eq!(p.small_viewers(), 2);
        p.remove(&"near");
        let est = [("a", 400_000), ("b", 500_000)];
        let mut moves = p.decide(&est, None, t);
        moves.sort_by_key(|m| m.0);
        assert_eq!(moves, vec![("a", Move::ToMain), ("b", Move::ToMain)]);
        assert_eq!(p.small_viewers(), 0);
        // Nothing more to do while it stays so; and as a group of their own they stay.
        assert!(p.decide(&est, None, t).is_empty());
        let (moves, _) = run(&mut p, &est, 500_000, t, 10);
        assert!(moves.is_empty(), "{moves:?}");
    }

    #[test]
    fn a_viewer_that_leaves_is_forgotten() {
        let mut p = SmallPolicy::new(CONFIGURED);
        let t = Instant::now();
        run(&mut p, &[("a", 400_000)], CONFIGURED, t, 5);
        assert_eq!(p.small_viewers(), 1);
        p.remove(&"a");
        assert_eq!(p.small_viewers(), 0);
        assert!(!p.is_small(&"a"));
    }

    #[test]
    fn the_small_rate_follows_its_slowest_viewer_between_floor_and_top() {
        let mut p = SmallPolicy::new(CONFIGURED);
        let t = Instant::now();
        let est = [("near", CONFIGURED), ("a", 450_000), ("b", 800_000)];
        run(&mut p, &est, CONFIGURED, t, 5);
        assert!(p.is_small(&"a") && p.is_small(&"b"));
        // The near viewer's estimate does not count: it watches the main encode.
        assert_eq!(p.small_target(&est), 450_000);
        let est = [("a", 100_000), ("b", 800_000)];
        assert_eq!(p.small_target(&est), 300_000, "the floor");
        let est = [("a", 1_400_000), ("b", 1_500_000)];
        assert_eq!(p.small_target(&est), 525_000, "the top");
    }

    #[test]
    fn the_small_encode_is_told_its_rate_at_once_then_rarely() {
        let mut p = SmallPolicy::new(CONFIGURED);
        let t = Instant::now();
        let (_, t) = run(&mut p, &[("a", 450_000)], CONFIGURED, t, 5);
        assert_eq!(p.poll_rate(&[("a", 450_000)], t), Some(450_000));
        // A small step, or a big one too soon: not told.
        let t1 = t + MIN_INTERVAL * 2;
        assert_eq!(p.poll_rate(&[("a", 460_000)], t1), None);
        assert_eq!(p.poll_rate(&[("a", 350_000)], t + MIN_INTERVAL / 2), None);
        assert_eq!(p.poll_rate(&[("a", 350_000)], t1), Some(350_000));
        p.small_stopped();
        assert_eq!(p.poll_rate(&[("a", 350_000)], t1), Some(350_000));
    }
}
