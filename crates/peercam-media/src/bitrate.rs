//! How fast the one shared encoder may send: each viewer's rate from its receiver reports,
//! and the group's rate from those.
//!
//! Each viewer's estimate follows the loss its receiver reports say (the fraction of our
//! packets it lost since its previous report), as the loss-based half of Google's congestion
//! control does: under 2 % it grows by 8 % a second towards the configured rate; from 2 % to
//! 10 % it holds (retransmission repairs that much); over 10 % it falls by half the loss
//! (`rate × (1 − loss/2)`), never under the floor. Every client sends receiver reports
//! (browsers, aiortc, GStreamer), so every viewer has an estimate; no transport-wide feedback
//! or REMB is needed.
//!
//! The group: every viewer watches one encode, so the encoder runs at one rate for all: the
//! highest rate that at least half of the viewers can take (the upper median of their
//! estimates), never under [`FLOOR_SHARE`] of the configured rate. So:
//! - one viewer on a poor link (a bad Wi-Fi corner) does not drag the others down: it is a
//!   minority, kept watching by retransmissions and the keyframe gate at the group's rate
//!   (or moved to the small encode, below, when its link takes much less), and it never
//!   lowers the rate even while its estimate is still falling;
//! - when most viewers lose packets (the camera's own uplink is the bottleneck, or the Wi-Fi
//!   is busy for everyone) the median falls, so the rate falls for all;
//! - with one viewer the rate follows it; with two, the better link decides.
//!
//! Why not the lowest estimate (what a single encode for everyone usually does): then the
//! worst link sets the picture of every viewer. A viewer whose link takes much less than the
//! group's rate (a link capped under the stream, where repair only adds to what does not fit)
//! is moved to a second, smaller encode instead ([`crate::small`], decided by
//! [`crate::small_policy`]): a software H.264 encode at most 360 lines high (a third of a 720p
//! picture's pixels) at about a third of the rate, running only while such a viewer watches. A viewer on it is set aside
//! ([`GroupRate::set_aside`]): its estimate starts again from the floor and is still kept (it
//! decides the small encode's rate and when the viewer moves back), but it no longer counts in
//! the group's rate.
//!
//! The encoder is told a new rate only when it moved by [`MIN_CHANGE`] or more, and at most
//! once per [`MIN_INTERVAL`]: encoders restart their rate control on a change.
//!
//! Pure: time is passed in; the worker's glue reads the reports and sets the encoder.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// The least share of the configured rate the encoder is ever set to: a picture that stays
/// readable (at 720p, 2 Mbit/s configured: 500 kbit/s).
pub const FLOOR_SHARE: f64 = 0.25;

/// Loss under which a viewer's estimate grows.
pub const LOW_LOSS: f64 = 0.02;

/// Loss over which a viewer's estimate falls.
pub const HIGH_LOSS: f64 = 0.10;

/// Growth per second while loss is low.
const GROWTH_PER_SEC: f64 = 0.08;

/// The least relative change worth telling the encoder.
pub const MIN_CHANGE: f64 = 0.05;

/// The least time between two changes told to the encoder.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// What one receiver report says about our stream.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Report {
    /// Fraction of our packets lost since the viewer's previous report, 0 to 1.
    pub loss: f64,
}

impl Report {
    /// From the RTCP report block's `fraction lost` (lost/expected × 256).
    pub fn from_fraction_lost(fraction: u32) -> Report {
        Report {
            loss: (f64::from(fraction.min(255)) / 256.0).clamp(0.0, 1.0),
        }
    }
}

/// One viewer's estimate.
#[derive(Debug, Clone, Copy)]
struct Viewer {
    /// Bits/s it can take, as far as its reports tell.
    rate: f64,
    /// When its last report came.
    at: Instant,
}

/// The group's rate: see the module comment.
#[derive(Debug)]
pub struct GroupRate<K> {
    /// The configured rate, bits/s: no estimate goes above it.
    max: f64,
    /// The least rate, bits/s.
    floor: f64,
    /// Each viewer's estimate.
    viewers: HashMap<K, Viewer>,
    /// What the encoder was last told, bits/s, and when.
    applied: f64,
    applied_at: Option<Instant>,
    /// Viewers already told of as poor links (see [`GroupRate::newly_poor`]).
    told_poor: HashSet<K>,
    /// Viewers watching another encode (the small one, see [`crate::small_policy`]): their
    /// estimates are kept, but they do not count in the group's rate.
    aside: HashSet<K>,
}

impl<K: Eq + Hash + Clone> GroupRate<K> {
    /// A group with no viewer yet, the encoder at its configured rate `max` (bits/s).
    pub fn new(max: u32) -> GroupRate<K> {
        let max = f64::from(max.max(1));
        GroupRate {
            max,
            floor: max * FLOOR_SHARE,
            viewers: HashMap::new(),
            applied: max,
            applied_at: None,
            told_poor: HashSet::new(),
            aside: HashSet::new(),
        }
    }

    /// Takes a viewer's report; a viewer's first report starts it at the group's rate.
    pub fn report(&mut self, viewer: &K, report: Report, now: Instant) {
        let start = Viewer {
            rate: self.applied,
            at: now,
        };
        let v = self.viewers.entry(viewer.clone()).or_insert(start);
        let elapsed = now.saturating_duration_since(v.at).as_secs_f64().min(5.0);
        v.rate = if report.loss < LOW_LOSS {
            (v.rate * (1.0 + GROWTH_PER_SEC * elapsed)).min(self.max)
        } else if report.loss > HIGH_LOSS {
            (v.rate * (1.0 - report.loss / 2.0)).max(self.floor)
        } else {
            v.rate
        };
        v.at = now;
    }

    /// A viewer left.
    pub fn remove(&mut self, viewer: &K) {
        self.viewers.remove(viewer);
        self.told_poor.remove(viewer);
        self.aside.remove(viewer);
    }

    /// Counts `viewer` in the group's rate (`aside` false) or not (it watches another encode).
    ///
    /// A viewer set aside starts again from the floor: its estimate was learned on a stream
    /// its link could not take and was still falling (it is moved after a couple of reports,
    /// not once it has settled), and a stream sent at what the link only just takes loses
    /// its keyframes' bursts. From there it grows as its reports allow.
    pub fn set_aside(&mut self, viewer: &K, aside: bool) {
        if aside {
            if self.aside.insert(viewer.clone()) {
                if let Some(v) = self.viewers.get_mut(viewer) {
                    v.rate = self.floor;
                }
            }
            self.told_poor.remove(viewer);
        } else {
            self.aside.remove(viewer);
        }
    }

    /// Viewers counted in the group's rate (with a report, not set aside).
    pub fn counted_viewers(&self) -> usize {
        self.counted().count()
    }

    /// Every viewer's estimate, bits/s, counted in the group's rate or not.
    pub fn estimates(&self) -> Vec<(K, u32)> {
        self.viewers
            .iter()
            .map(|(k, v)| (k.clone(), v.rate.round() as u32))
            .collect()
    }

    /// Viewers that became poor links since the last call (for the log), with their
    /// estimates; one that recovers and falls again is told of again.
    pub fn newly_poor(&mut self) -> Vec<(K, u32)> {
        let poor = self.poor();
        self.told_poor.retain(|k| poor.iter().any(|(p, _)| p == k));
        poor.into_iter()
            .filter(|(k, _)| self.told_poor.insert(k.clone()))
            .collect()
    }

    /// Viewers counted in the group whose links take less than its rate, with their
    /// estimates, bits/s.
    pub fn poor(&self) -> Vec<(K, u32)> {
        let median = self.median();
        self.counted()
            .filter(|(_, v)| v.rate < median * (1.0 - MIN_CHANGE))
            .map(|(k, v)| (k.clone(), v.rate.round() as u32))
            .collect()
    }

    /// The rate the group should have now, bits/s.
    pub fn target(&self) -> u32 {
        self.median().clamp(self.floor, self.max).round() as u32
    }

    /// The rate to tell the encoder now, when it should be told one.
    pub fn poll(&mut self, now: Instant) -> Option<u32> {
        let target = f64::from(self.target());
        let moved = (target - self.applied).abs() / self.applied >= MIN_CHANGE
            // Back to the configured rate exactly, however small the step.
            || (target == self.max && self.applied != self.max);
        let rested = self
            .applied_at
            .is_none_or(|at| now.saturating_duration_since(at) >= MIN_INTERVAL);
        if !(moved && rested) {
            return None;
        }
        self.applied = target;
        self.applied_at = Some(now);
        Some(self.target())
    }

    /// What the encoder was last told, bits/s.
    pub fn applied(&self) -> u32 {
        self.applied.round() as u32
    }

    /// The viewers counted in the group's rate.
    fn counted(&self) -> impl Iterator<Item = (&K, &Viewer)> {
        self.viewers
            .iter()
            .filter(|(k, _)| !self.aside.contains(*k))
    }

    /// The highest rate at least half of the counted viewers can take (the upper median of
    /// their estimates); the configured rate without any.
    fn median(&self) -> f64 {
        let mut rates: Vec<f64> = self.counted().map(|(_, v)| v.rate).collect();
        if rates.is_empty() {
            return self.max;
        }
        rates.sort_by(f64::total_cmp);
        rates[rates.len() / 2]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: u32 = 2_000_000;

    fn lossy(percent: f64) -> Report {
        Report {
            loss: percent / 100.0,
        }
    }

    /// Feeds `viewer` a report a second for `secs` seconds from `t`; the time after.
    fn reports(
        g: &mut GroupRate<&'static str>,
        viewer: &'static str,
        loss: f64,
        t: Instant,
        secs: u64,
    ) -> Instant {
        let mut now = t;
        for _ in 0..secs {
            now += Duration::from_secs(1);
            g.report(&viewer, lossy(loss), now);
        }
        now
    }

    #[test]
    fn the_fraction_lost_reads_as_a_share() {
        assert_eq!(Report::from_fraction_lost(0).loss, 0.0);
        assert!((Report::from_fraction_lost(26).loss - 0.1016).abs() < 0.001);
        assert!(Report::from_fraction_lost(9999).loss < 1.0);
    }

    #[test]
    fn a_clean_link_keeps_the_configured_rate() {
        let t = Instant::now();
        let mut g = GroupRate::new(MAX);
        reports(&mut g, "a", 0.0, t, 10);
        assert_eq!(g.target(), MAX);
        assert_eq!(g.poll(t), None, "nothing to change");
    }

    #[test]
    fn moderate_loss_holds_the_rate_and_heavy_loss_lowers_it_to_the_floor() {
        let t = Instant::now();
        let mut g = GroupRate::new(MAX);
        let t = reports(&mut g, "a", 5.0, t, 10);
        assert_eq!(
            g.target(),
            MAX,
            "5 % is repaired, not a reason to slow down"
        );
        let t = reports(&mut g, "a", 20.0, t, 1);
        assert_eq!(g.target(), 1_800_000);
        reports(&mut g, "a", 20.0, t, 30);
        assert_eq!(g.target(), (f64::from(MAX) * FLOOR_SHARE) as u32);
    }

    #[test]
    fn the_rate_grows_back_once_the_loss_is_gone() {
        let t = Instant::now();
        let mut g = GroupRate::new(MAX);
        let t = reports(&mut g, "a", 30.0, t, 10);
        let low = g.target();
        assert!(low < MAX / 2, "{low}");
        let t = reports(&mut g, "a", 0.0, t, 5);
        let back = g.target();
        assert!(back > low && back < MAX, "grows gradually: {low} -> {back}");
        reports(&mut g, "a", 0.0, t, 30);
        assert_eq!(g.target(), MAX);
    }

    #[test]
    fn one_poor_viewer_does_not_drag_the_others_down() {
        let t = Instant::now();
        let mut g = GroupRate::new(MAX);
        let mut now = t;
        for _ in 0..20 {
            now += Duration::from_secs(1);
            for v in ["a", "b", "c"] {
                g.report(&v, lossy(0.5), now);
            }
            g.report(&"capped", lossy(25.0), now);
            // Not even while its estimate is still falling.
            assert_eq!(g.target(), MAX);
        }
        let poor = g.poor();
        assert_eq!(poor.len(), 1);
        assert_eq!(poor[0].0, "capped");
        assert_eq!(g.newly_poor().len(), 1, "told once");
        assert!(g.newly_poor().is_empty());
        // With two viewers the better link decides.
        let mut two = GroupRate::new(MAX);
        reports(&mut two, "good", 0.0, t, 10);
        reports(&mut two, "poor", 30.0, t, 10);
        assert_eq!(two.target(), MAX);
        // Two of two poor is the group's problem: both are followed.
        let mut pair = GroupRate::new(MAX);
        let mut now = t;
        for _ in 0..3 {
            now += Duration::from_secs(1);
            pair.report(&"a", lossy(20.0), now);
            pair.report(&"b", lossy(20.0), now);
        }
        assert!(pair.target() < MAX * 3 / 4, "{}", pair.target());
        assert!(pair.poor().is_empty());
    }

    #[test]
    fn when_everyone_loses_the_rate_falls_for_everyone() {
        let t = Instant::now();
        let mut g = GroupRate::new(MAX);
        let mut now = t;
        for _ in 0..5 {
            now += Duration::from_secs(1);
            for v in ["a", "b", "c", "d"] {
                g.report(&v, lossy(15.0), now);
            }
        }
        assert!(g.target() < MAX * 3 / 4, "{}", g.target());
        assert!(g.poor().is_empty());
    }

    #[test]
    fn a_viewer_set_aside_stops_counting_and_starts_again_from_the_floor() {
        let t = Instant::now();
        let mut g = GroupRate::new(MAX);
        reports(&mut g, "good", 0.0, t, 10);
        reports(&mut g, "poor", 30.0, t, 10);
        reports(&mut g, "poorer", 40.0, t, 10);
        // Two of three poor: the group follows them.
        assert!(g.target() < MAX / 2, "{}", g.target());
        g.set_aside(&"poor", true);
        g.set_aside(&"poorer", true);
        assert_eq!(g.counted_viewers(), 1);
        assert_eq!(g.target(), MAX);
        assert!(
            g.poor().is_empty(),
            "those set aside are not the group's poor links"
        );
        let estimates: HashMap<_, _> = g.estimates().into_iter().collect();
        let floor = (f64::from(MAX) * FLOOR_SHARE) as u32;
        assert!(estimates["poor"] == floor && estimates["good"] == MAX);
        // From the floor, its estimate grows as its reports allow.
        reports(&mut g, "poor", 0.0, t + Duration::from_secs(10), 3);
        let estimates: HashMap<_, _> = g.estimates().into_iter().collect();
        assert!(estimates["poor"] > floor, "{estimates:?}");
        // One of two counted poor: the better link decides; two of three: the poor ones.
        g.set_aside(&"poor", false);
        assert_eq!(g.target(), MAX);
        g.set_aside(&"poorer", false);
        assert!(g.target() < MAX / 2, "counted again: {}", g.target());
    }

    #[test]
    fn a_viewer_that_leaves_stops_counting() {
        let t = Instant::now();
        let mut g = GroupRate::new(MAX);
        reports(&mut g, "a", 40.0, t, 10);
        assert!(g.target() < MAX);
        g.remove(&"a");
        assert_eq!(g.target(), MAX);
    }

    #[test]
    fn the_encoder_is_told_rarely_and_only_of_real_changes() {
        let t = Instant::now();
        let mut g = GroupRate::new(MAX);
        let t1 = reports(&mut g, "a", 20.0, t, 1);
        assert_eq!(g.poll(t1), Some(1_800_000));
        assert_eq!(g.applied(), 1_800_000);
        // Another drop within the interval waits for it.
        g.report(&"a", lossy(20.0), t1 + Duration::from_millis(300));
        assert_eq!(g.poll(t1 + Duration::from_millis(300)), None);
        assert_eq!(g.poll(t1 + MIN_INTERVAL), Some(1_620_000));
        // A step under MIN_CHANGE is not worth a change: half a second of growth is 4 %.
        g.report(&"a", lossy(0.0), t1 + Duration::from_millis(800));
        assert!(g.target() > 1_620_000);
        assert_eq!(g.poll(t1 + MIN_INTERVAL * 3), None);
    }
}
