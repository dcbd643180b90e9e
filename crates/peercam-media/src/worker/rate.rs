//! The encoders' rates following the viewers' receiver reports, each tick, and the viewers on
//! poor links moved to the small encode and back: the glue between the peers
//! ([`Peer::take_report`]), the policies ([`crate::bitrate`], [`crate::small_policy`]) and the
//! capture ([`Fanout`]).

use std::collections::HashMap;
use std::time::Instant;

use peercam_sdp::Codec;

use crate::bitrate::GroupRate;
use crate::fanout::Fanout;
use crate::peer::{Peer, PeerKey};
use crate::small_policy::{Move, SmallPolicy};

/// The rate policies of one capture.
pub(super) struct Rates {
    /// The main encode's rate, from the viewers it feeds.
    group: GroupRate<PeerKey>,
    /// Who watches the small encode, when the capture can have one.
    small: Option<SmallPolicy<PeerKey>>,
}

impl Rates {
    /// For a capture just built.
    pub(super) fn new(fanout: &Fanout) -> Rates {
        let configured = fanout.configured_bitrate();
        Rates {
            group: GroupRate::new(configured),
            small: fanout
                .small_available()
                .then(|| SmallPolicy::new(configured)),
        }
    }

    /// A viewer left.
    pub(super) fn remove(&mut self, key: &PeerKey) {
        self.group.remove(key);
        if let Some(small) = self.small.as_mut() {
            small.remove(key);
        }
    }

    /// Feeds the policies the reports that came since the last tick, moves the viewers they
    /// say, and tells the encoders a new rate when they have one.
    pub(super) fn follow(
        &mut self,
        peers: &mut HashMap<PeerKey, Peer>,
        fanout: &mut Fanout,
        now: Instant,
    ) {
        for (key, peer) in peers.iter() {
            if let Some(report) = peer.take_report() {
                self.group.report(key, report, now);
            }
        }
        if self.small.is_some() {
            self.move_viewers(peers, fanout, now);
        }
        let moving = self.small.is_some();
        for (key, bps) in self.group.newly_poor() {
            log::info!(
                peer = key.1.as_str();
                "this viewer's link takes about {} kbit/s, under what most viewers take: it \
                 keeps the group's rate, repaired by retransmissions{}",
                bps / 1000,
                if moving { ", unless it stays well under it" } else { "" }
            );
        }
        let Some(bps) = self.group.poll(now) else {
            return;
        };
        if fanout.set_bitrate(bps) {
            log::info!(
                "encoder rate {} kbit/s (of {}), from the viewers' receiver reports",
                bps / 1000,
                fanout.configured_bitrate() / 1000
            );
        } else {
            log::debug!("this encoder's rate cannot be changed; it stays as configured");
        }
    }

    /// Moves the H.264 viewers the small encode's policy says, and sets its rate.
    fn move_viewers(
        &mut self,
        peers: &mut HashMap<PeerKey, Peer>,
        fanout: &mut Fanout,
        now: Instant,
    ) {
        let Some(small) = self.small.as_mut() else {
            return;
        };
        // Only H.264 viewers can move; VP8 ones have their own encode.
        let estimates: Vec<(PeerKey, u32)> = self
            .group
            .estimates()
            .into_iter()
            .filter(|(k, _)| {
                peers
                    .get(k)
                    .is_some_and(|p| p.fed == Codec::H264 && p.tee_pad.is_some())
            })
            .collect();
        let group = self.group.target();
        let main_watched = self.group.counted_viewers() > 0;
        for (key, to) in small.decide(&estimates, main_watched.then_some(group), now) {
            let Some(peer) = peers.get_mut(&key) else {
                continue;
            };
            let Some(pad) = peer.tee_pad.clone() else {
                continue;
            };
            let estimate = estimates
                .iter()
                .find(|(k, _)| *k == key)
                .map_or(0, |(_, e)| *e);
            let moved = match to {
                Move::ToSmall => {
                    // Set aside first: it starts on the small encode from the floor.
                    self.group.set_aside(&key, true);
                    let target = small.small_target(&self.group.estimates());
                    fanout.move_to_small(&pad, target)
                }
                Move::ToMain => fanout.move_to_main(&pad),
            };
            match moved {
                Ok(new) => {
                    peer.tee_pad = Some(new);
                    if to == Move::ToMain {
                        self.group.set_aside(&key, false);
                    }
                    let (to, why) = match (to, main_watched) {
                        (Move::ToSmall, _) => ("to the small encode", "well under"),
                        (Move::ToMain, true) => ("back to the main encode", "up to"),
                        (Move::ToMain, false) => {
                            log::info!(
                                peer = key.1.as_str();
                                "this viewer moves back to the main encode at its next keyframe: \
                                 nobody else watches it"
                            );
                            continue;
                        }
                    };
                    log::info!(
                        peer = key.1.as_str();
                        "this viewer moves {to} at its next keyframe: its link takes about {} \
                         kbit/s, {why} the main encode's {} kbit/s",
                        estimate / 1000,
                        group / 1000
                    );
                }
                Err(e) => {
                    log::warn!(peer = key.1.as_str(); "this viewer could not be moved: {e}");
                    // Forgotten: it watches the main encode as a new viewer would.
                    if to == Move::ToSmall {
                        self.group.set_aside(&key, false);
                        small.remove(&key);
                    }
                }
            }
        }
        if fanout.small_encoders() > 0 {
            // As they are after the moves: one moved now starts from the floor.
            if let Some(bps) = small.poll_rate(&self.group.estimates(), now) {
                fanout.set_small_bitrate(bps);
                log::debug!("small encode rate {} kbit/s", bps / 1000);
            }
        }
        // Its last viewer moved back (or left, which stopped it at once): its next start is
        // told its rate afresh.
        fanout.stop_small_if_unwatched();
        if fanout.small_encoders() == 0 {
            small.small_stopped();
        }
    }
}
