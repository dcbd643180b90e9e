//! Peers on their way out: when a branch that has left may be stopped (pure; time passed in).
//!
//! webrtcbin does its work (making and applying descriptions, building its transports) on a
//! thread of its own, from a queue. Stopping a webrtcbin while that thread is still building
//! races with it: an element it brings up after the stop outlives its bin (GStreamer then
//! aborts on disposing a running element), and a transport it finishes after the stop keeps
//! a reference to itself, so its sockets are never closed. So a peer that leaves is first
//! detached from the stream (nothing of it is fed or counted any more), then held here until
//! webrtcbin has answered everything the peer asked of it (the owner counts those requests and
//! reports when the last is answered, [`Retiring::settled`]), and only then stopped. A webrtcbin that never gets through its queue is stopped anyway after
//! [`SETTLE_LIMIT`] ([`Retiring::overdue`]).
//!
//! It must not touch GStreamer: it keeps whatever the owner gives it and says when to stop it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The longest a departed peer is held waiting for its webrtcbin to settle.
pub const SETTLE_LIMIT: Duration = Duration::from_secs(3);

/// Departed peers, each under a number of its own (a member that leaves and comes back has
/// the same key as before, so keys cannot tell two of its peers apart).
#[derive(Debug)]
pub struct Retiring<T> {
    /// What is held, by number, with when it was taken in.
    held: BTreeMap<u64, (T, Instant)>,
    /// The number the next one gets.
    next: u64,
}

impl<T> Default for Retiring<T> {
    fn default() -> Self {
        Retiring {
            held: BTreeMap::new(),
            next: 0,
        }
    }
}

impl<T> Retiring<T> {
    /// Nothing held.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes in a departed peer at `now`; returns the number its settling is reported under.
    pub fn hold(&mut self, now: Instant, item: T) -> u64 {
        let number = self.next;
        self.next += 1;
        self.held.insert(number, (item, now));
        number
    }

    /// The peer held under `number`, if it still is.
    pub fn get(&self, number: u64) -> Option<&T> {
        self.held.get(&number).map(|(item, _)| item)
    }

    /// The peer held under `number` has settled: it is given back, to be stopped. `None` when
    /// it was given back already (overdue, or reported twice).
    pub fn settled(&mut self, number: u64) -> Option<T> {
        self.held.remove(&number).map(|(item, _)| item)
    }

    /// The peers held for [`SETTLE_LIMIT`] or longer at `now`, given back to be stopped
    /// anyway, with how long each was held.
    pub fn overdue(&mut self, now: Instant) -> Vec<(T, Duration)> {
        let late: Vec<u64> = self
            .held
            .iter()
            .filter(|(_, (_, since))| now.saturating_duration_since(*since) >= SETTLE_LIMIT)
            .map(|(n, _)| *n)
            .collect();
        late.into_iter()
            .filter_map(|n| self.held.remove(&n))
            .map(|(item, since)| (item, now.saturating_duration_since(since)))
            .collect()
    }

    /// Everything held, given back (the worker is stopping).
    pub fn drain(&mut self) -> Vec<T> {
        std::mem::take(&mut self.held)
            .into_values()
            .map(|(item, _)| item)
            .collect()
    }

    /// How many are held.
    pub fn len(&self) -> usize {
        self.held.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_settled_peer_is_given_back_once() {
        let t0 = Instant::now();
        let mut r = Retiring::new();
        let a = r.hold(t0, "a");
        let b = r.hold(t0, "b");
        assert_ne!(a, b);
        assert_eq!(r.len(), 2);
        assert_eq!(r.settled(b), Some("b"));
        assert_eq!(r.settled(b), None);
        assert_eq!(r.len(), 1);
        assert_eq!(r.settled(a), Some("a"));
        assert!(r.is_empty());
    }

    #[test]
    fn the_same_key_twice_is_held_twice() {
        let t0 = Instant::now();
        let mut r = Retiring::new();
        let first = r.hold(t0, ("cam", "m1"));
        let again = r.hold(t0 + MS, ("cam", "m1"));
        assert_ne!(first, again);
        assert_eq!(r.settled(again), Some(("cam", "m1")));
        assert_eq!(r.len(), 1);
    }

    #[test]
    fn a_peer_that_never_settles_is_given_back_at_the_limit() {
        let t0 = Instant::now();
        let mut r = Retiring::new();
        let slow = r.hold(t0, "slow");
        r.hold(t0 + SETTLE_LIMIT / 2, "later");
        assert!(r.overdue(t0 + SETTLE_LIMIT - MS).is_empty());
        let due = r.overdue(t0 + SETTLE_LIMIT);
        assert_eq!(due, vec![("slow", SETTLE_LIMIT)]);
        // Its settling, reported late, finds nothing.
        assert_eq!(r.settled(slow), None);
        assert_eq!(r.len(), 1);
        let due = r.overdue(t0 + SETTLE_LIMIT * 2);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].0, "later");
        assert!(r.is_empty());
    }

    #[test]
    fn draining_gives_back_everything() {
        let t0 = Instant::now();
        let mut r = Retiring::new();
        r.hold(t0, 1);
        r.hold(t0, 2);
        let mut all = r.drain();
        all.sort();
        assert_eq!(all, vec![1, 2]);
        assert!(r.is_empty());
        assert!(r.overdue(t0 + SETTLE_LIMIT).is_empty());
    }
}
