//! Moving a viewer's branch from one encode's tee to another's, at the other's keyframe: the
//! branch's payloader and SSRC go on, and the viewer's decoder sees the new stream start with
//! a keyframe (its parameter sets in front, which `rtph264pay config-interval=-1` sends).
//!
//! ```text
//!   from tee ─ old pad ─▶ branch sink        until the target's next keyframe, then
//!   to tee   ─ new pad ─▶ branch sink
//! ```
//!
//! The new pad is requested at once, its frames dropped by a blocking probe until a keyframe
//! comes; at that keyframe, in the target encode's streaming thread, the old pad is unlinked
//! between two of its buffers and given back, and the new one linked. Linking inside a
//! blocking probe makes GStreamer send the new stream's caps and segment before the keyframe
//! itself. The caller asks the target encoder for the keyframe.
//!
//! Must not: touch what the branch is (fanout.rs and peer.rs own it).

use std::sync::{Arc, Mutex, MutexGuard};

use gstreamer as gst;
use gstreamer::prelude::*;

use crate::fanout::release_tee_pad;
use crate::MediaError;

/// A branch on its way from one tee to another.
pub struct Relink {
    /// The target tee's pad, which feeds the branch from the keyframe on.
    new: gst::Pad,
    /// The pad that feeds it until then; `None` once moved (or cancelled).
    old: Arc<Mutex<Option<gst::Pad>>>,
}

impl Relink {
    /// Starts moving the branch fed through `old` (a tee's request pad) to `to` (a tee),
    /// effective at `to`'s next keyframe.
    pub fn start(old: &gst::Pad, to: &gst::Element) -> Result<Relink, MediaError> {
        let sink = old
            .peer()
            .ok_or_else(|| MediaError::Pipeline("the branch to move is not fed".into()))?;
        let new = to
            .request_pad_simple("src_%u")
            .ok_or_else(|| MediaError::Pipeline("the target tee refused a pad".into()))?;
        let pending = Arc::new(Mutex::new(Some(old.clone())));
        let held = pending.clone();
        new.add_probe(
            gst::PadProbeType::BUFFER | gst::PadProbeType::BLOCK,
            move |pad, info| {
                let Some(gst::PadProbeData::Buffer(buffer)) = &info.data else {
                    return gst::PadProbeReturn::Pass;
                };
                if buffer.flags().contains(gst::BufferFlags::DELTA_UNIT) {
                    return gst::PadProbeReturn::Drop;
                }
                // Held through the move, so that a cancel waits for it to be over.
                let mut pending = lock(&held);
                let Some(old) = pending.take() else {
                    // Cancelled: the branch left before the keyframe came.
                    return gst::PadProbeReturn::Drop;
                };
                release_tee_pad(&old);
                if let Err(e) = pad.link(&sink) {
                    log::warn!("a viewer's branch could not be moved to its new encode: {e:?}");
                    return gst::PadProbeReturn::Drop;
                }
                gst::PadProbeReturn::Remove
            },
        );
        Ok(Relink { new, old: pending })
    }

    /// The target tee's pad: the branch's from now on (to unlink it, or to move it again).
    pub fn pad(&self) -> &gst::Pad {
        &self.new
    }

    /// Whether the branch has moved.
    pub fn done(&self) -> bool {
        lock(&self.old).is_none()
    }

    /// Gives up the move: the old pad, if it still feeds the branch, is unlinked and given
    /// back (the caller releases the new one).
    pub fn cancel(&self) {
        let old = lock(&self.old).take();
        if let Some(old) = old {
            release_tee_pad(&old);
        }
    }
}

/// The pending pad's lock; a panic elsewhere while holding it leaves plain data behind.
fn lock(old: &Mutex<Option<gst::Pad>>) -> MutexGuard<'_, Option<gst::Pad>> {
    old.lock().unwrap_or_else(|e| e.into_inner())
}
