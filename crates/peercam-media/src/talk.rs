//! Who may talk through the device's speaker: one viewer at a time holds the floor, from the
//! moment it asks (push to talk pressed) until it lets go, leaves, or has talked for
//! [`LONGEST_TURN`]. A viewer asking while another holds it is told someone is talking and
//! may ask again; nobody is queued (a press that waited would start talking into a room that
//! moved on).
//!
//! Pure: time is passed in; the worker's glue (worker/talk.rs) opens the holder's sound to
//! the speaker and tells the viewers, in the words below.

use std::time::{Duration, Instant};

/// The longest one turn lasts: a viewer whose page kept the button down (a stuck key, a
/// page left open) cannot keep everyone else off the speaker.
pub const LONGEST_TURN: Duration = Duration::from_secs(60);

/// What a viewer asking for the floor gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// The floor is its own now (or was already).
    Granted,
    /// Someone else holds it.
    Busy,
}

/// Why a turn ended, as the one whose turn it was is told.
pub const TOO_LONG: &str = "you talked for a minute, the longest one turn lasts; press again \
                            to go on";

/// What a viewer asking while another talks is told.
pub const SOMEONE_TALKING: &str = "someone else is talking to the camera right now; try again \
                                   when they stop";

/// The floor.
#[derive(Debug)]
pub struct Floor<K> {
    holder: Option<(K, Instant)>,
}

impl<K> Default for Floor<K> {
    fn default() -> Self {
        Floor { holder: None }
    }
}

impl<K: PartialEq + Clone> Floor<K> {
    /// `who` asks for the floor at `now`. Asking again while holding it keeps the turn's
    /// start (a repeated press does not extend a turn).
    pub fn ask(&mut self, who: &K, now: Instant) -> Ask {
        match &self.holder {
            Some((holder, _)) if holder == who => Ask::Granted,
            Some(_) => Ask::Busy,
            None => {
                self.holder = Some((who.clone(), now));
                Ask::Granted
            }
        }
    }

    /// `who` lets go (or is gone): true if it held the floor.
    pub fn release(&mut self, who: &K) -> bool {
        if self.holder.as_ref().is_some_and(|(h, _)| h == who) {
            self.holder = None;
            return true;
        }
        false
    }

    /// Ends the turn, whoever holds it; who that was.
    pub fn clear(&mut self) -> Option<K> {
        self.holder.take().map(|(h, _)| h)
    }

    /// The holder whose turn has lasted [`LONGEST_TURN`] at `now`, if any: the floor is free
    /// again.
    pub fn expired(&mut self, now: Instant) -> Option<K> {
        let (_, since) = self.holder.as_ref()?;
        if now.saturating_duration_since(*since) < LONGEST_TURN {
            return None;
        }
        self.clear()
    }

    /// Who holds the floor.
    pub fn holder(&self) -> Option<&K> {
        self.holder.as_ref().map(|(h, _)| h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_talks_and_the_next_is_told_someone_is_talking() {
        let t0 = Instant::now();
        let mut floor = Floor::default();
        assert_eq!(floor.ask(&"a", t0), Ask::Granted);
        assert_eq!(floor.ask(&"b", t0), Ask::Busy);
        assert_eq!(floor.ask(&"a", t0 + Duration::from_secs(1)), Ask::Granted);
        assert!(!floor.release(&"b"), "b never held it");
        assert_eq!(floor.holder(), Some(&"a"));
        assert!(floor.release(&"a"));
        assert_eq!(floor.holder(), None);
        assert_eq!(floor.ask(&"b", t0), Ask::Granted);
        assert_eq!(floor.clear(), Some("b"));
        assert_eq!(floor.clear(), None);
    }

    #[test]
    fn a_turn_ends_after_the_longest_turn_and_a_repeated_press_does_not_extend_it() {
        let t0 = Instant::now();
        let mut floor = Floor::default();
        floor.ask(&"a", t0);
        floor.ask(&"a", t0 + Duration::from_secs(50));
        assert_eq!(
            floor.expired(t0 + LONGEST_TURN - Duration::from_millis(1)),
            None
        );
        assert_eq!(floor.expired(t0 + LONGEST_TURN), Some("a"));
        assert_eq!(floor.holder(), None);
        assert_eq!(floor.expired(t0 + LONGEST_TURN * 2), None);
        assert_eq!(floor.ask(&"b", t0 + LONGEST_TURN), Ask::Granted);
    }
}
