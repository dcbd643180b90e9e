//! The capture's side of the small encode: starting it for its first viewer, moving viewers'
//! branches to it and back ([`Relink`], at the target's keyframe), and stopping it once no
//! viewer is fed from it. Which viewer moves when is [`crate::small_policy`]'s decision; the
//! capture pipeline and the main encode are [`crate::fanout::Fanout`]'s, which calls this.

use gstreamer as gst;

use crate::relink::Relink;
use crate::small::SmallEncode;
use crate::MediaError;

/// The small encode, while it runs, and the moves under way.
pub struct SmallSide {
    /// Whether the small encode can be built for this capture (its raw frames are reachable
    /// and a software H.264 encoder is installed).
    available: bool,
    /// The encode, while a viewer is fed from it (or on its way to it).
    encode: Option<SmallEncode>,
    /// Branches on their way from one encode to the other.
    under_way: Vec<Relink>,
}

impl SmallSide {
    /// Nothing running; `available` says whether it can be.
    pub fn new(available: bool) -> SmallSide {
        SmallSide {
            available,
            encode: None,
            under_way: Vec::new(),
        }
    }

    /// Whether the small encode can be built for this capture.
    pub fn available(&self) -> bool {
        self.available
    }

    /// Small encodes running: 0 or 1.
    pub fn encoders(&self) -> usize {
        usize::from(self.encode.is_some())
    }

    /// Branches fed from it, those on their way to it included.
    pub fn branches(&self) -> usize {
        self.encode.as_ref().map_or(0, SmallEncode::branches)
    }

    /// Starts moving the branch fed through `pad` (the main tee's) to the small encode,
    /// starting it at `bps` bits/s if it does not run; the branch's pad from now on.
    pub fn to_small(
        &mut self,
        pipeline: &gst::Pipeline,
        raw: Option<&gst::Element>,
        pad: &gst::Pad,
        bps: u32,
    ) -> Result<gst::Pad, MediaError> {
        self.settle();
        if !self.available {
            return Err(MediaError::Pipeline(
                "no small encode for this capture".into(),
            ));
        }
        if self.encode.is_none() {
            let raw = raw.ok_or_else(|| MediaError::Pipeline("no raw frames".into()))?;
            self.encode = Some(SmallEncode::start(pipeline, raw, bps)?);
        }
        // Just started when missing.
        let encode = self.encode.as_ref().expect("small encode");
        let relink = Relink::start(pad, encode.tee());
        let relink = match relink {
            Ok(r) => r,
            Err(e) => {
                self.stop_if_unwatched(pipeline);
                return Err(e);
            }
        };
        // After the probe is in place, so that the keyframe is the one the move waits for.
        encode.force_keyframe();
        let new = relink.pad().clone();
        self.under_way.push(relink);
        Ok(new)
    }

    /// Starts moving the branch fed through `pad` (the small tee's) to `main` (the main
    /// encode's tee); the branch's pad from now on. The caller asks the main encoder for a
    /// keyframe.
    pub fn to_main(&mut self, pad: &gst::Pad, main: &gst::Element) -> Result<gst::Pad, MediaError> {
        self.settle();
        let relink = Relink::start(pad, main)?;
        let new = relink.pad().clone();
        self.under_way.push(relink);
        Ok(new)
    }

    /// The branch fed through `pad` is about to be unlinked: a move to it under way is given
    /// up (the pad it came from, if still linked, is given back).
    pub fn forget(&mut self, pad: &gst::Pad) {
        self.under_way.retain(|r| {
            if r.pad() != pad {
                return true;
            }
            r.cancel();
            false
        });
    }

    /// Sets the small encode's rate, bits/s, while it runs.
    pub fn set_bitrate(&self, bps: u32) {
        if let Some(encode) = &self.encode {
            encode.set_bitrate(bps);
        }
    }

    /// Asks the small encoder for a keyframe while it runs.
    pub fn force_keyframe(&self) {
        if let Some(encode) = &self.encode {
            encode.force_keyframe();
        }
    }

    /// Stops the small encode when no branch is fed from it or on its way to it; whether it
    /// stopped now.
    pub fn stop_if_unwatched(&mut self, pipeline: &gst::Pipeline) -> bool {
        self.settle();
        if self.encode.as_ref().is_none_or(|e| e.branches() > 0) {
            return false;
        }
        self.stop(pipeline);
        true
    }

    /// Stops the small encode, if it runs (nothing streams any more).
    pub fn stop(&mut self, pipeline: &gst::Pipeline) {
        for relink in self.under_way.drain(..) {
            relink.cancel();
        }
        if let Some(encode) = self.encode.take() {
            encode.stop(pipeline);
        }
    }

    /// Forgets the moves that are over.
    fn settle(&mut self) {
        self.under_way.retain(|r| !r.done());
    }
}
