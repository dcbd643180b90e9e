//! The shared encoders' rate following the viewers' receiver reports, each tick: the glue
//! between the peers ([`Peer::take_report`]), the group's policy ([`crate::bitrate`]) and the
//! capture ([`Fanout::set_bitrate`]).

use std::collections::HashMap;
use std::time::Instant;

use crate::bitrate::GroupRate;
use crate::fanout::Fanout;
use crate::peer::{Peer, PeerKey};

/// Feeds `rate` the reports that came since the last tick and tells the encoders a new rate
/// when the policy has one.
pub(super) fn follow(
    rate: &mut GroupRate<PeerKey>,
    peers: &HashMap<PeerKey, Peer>,
    fanout: &mut Fanout,
    now: Instant,
) {
    for (key, peer) in peers {
        if let Some(report) = peer.take_report() {
            rate.report(key, report, now);
        }
    }
    for (key, bps) in rate.newly_poor() {
        log::info!(
            peer = key.1.as_str();
            "this viewer's link takes about {} kbit/s, under what most viewers take: it keeps \
             the group's rate, repaired by retransmissions",
            bps / 1000
        );
    }
    let Some(bps) = rate.poll(now) else {
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
