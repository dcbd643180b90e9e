//! What a viewer's receiver reports say about our stream, as they arrive: the glue between
//! rtpbin and [`crate::bitrate`].
//!
//! rtpbin keeps, on the remote source that sent an RTCP report block about our stream, that
//! block's figures (`rb-fractionlost`, `rb-exthighestseq`, ...) in the source's `stats`. Each
//! time the remote source is heard (`on-ssrc-active`), they are read; a block is new when its
//! extended highest sequence number moved (feedback-only RTCP, such as a NACK, repeats the old
//! block). The worker's loop takes the latest new one each tick.

use std::sync::{Arc, Mutex};

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;

use crate::bitrate::Report;

/// The latest report block, shared with rtpbin's thread.
#[derive(Debug, Default)]
struct Latest {
    /// Its extended highest sequence number: a new block has another.
    seq: Option<u32>,
    /// Its fraction lost (of 256).
    fraction: u32,
    /// Not taken yet.
    fresh: bool,
}

/// One peer's receiver reports.
#[derive(Debug, Clone, Default)]
pub struct Reception {
    latest: Arc<Mutex<Latest>>,
}

impl Reception {
    /// For rtpbin's `on-ssrc-active` (`session`, `ssrc`): reads the source's latest report
    /// block. On rtpbin's thread.
    pub fn heard(&self, rtpbin: &gst::Element, session: u32, ssrc: u32) {
        let Some(stats) = source_stats(rtpbin, session, ssrc) else {
            return;
        };
        if !stats.get::<bool>("have-rb").unwrap_or(false) {
            return;
        }
        let (Ok(fraction), Ok(seq)) = (
            stats.get::<u32>("rb-fractionlost"),
            stats.get::<u32>("rb-exthighestseq"),
        ) else {
            return;
        };
        let mut latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        if latest.seq != Some(seq) {
            *latest = Latest {
                seq: Some(seq),
                fraction,
                fresh: true,
            };
        }
    }

    /// The report that came since the last call, if one did.
    pub fn take(&self) -> Option<Report> {
        let mut latest = self.latest.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut latest.fresh).then(|| Report::from_fraction_lost(latest.fraction))
    }
}

/// The `stats` of remote source `ssrc` in rtpbin's `session`.
fn source_stats(rtpbin: &gst::Element, session: u32, ssrc: u32) -> Option<gst::Structure> {
    let session =
        rtpbin.emit_by_name::<Option<glib::Object>>("get-internal-session", &[&session])?;
    let source = session.emit_by_name::<Option<glib::Object>>("get-source-by-ssrc", &[&ssrc])?;
    source.property::<Option<gst::Structure>>("stats")
}
