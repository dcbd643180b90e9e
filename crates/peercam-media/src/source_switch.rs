//! The camera source's switch: the capture split so that the source can fail alone.
//!
//! ```text
//!   <source elements> ─▶ sink_0 ┐
//!                               ├ input-selector name=source-switch ─▶ <encoder> ─▶ tee
//!   placeholder picture ─▶ sink_1┘
//!   (videotestsrc pattern=smpte, same caps as the source)
//! ```
//!
//! The launch line marks the boundary with `input-selector name=source-switch` (see
//! [`crate::launch::describe`]); a line without it has no switch and works as before. The
//! source part is every element of the launch line that is not downstream of the switch.
//! Its elements and the placeholder's are locked out of the pipeline's state changes: the
//! worker opens and stops them, as [`crate::source_health`] decides, while the encoder, the
//! tee and every viewer's branch keep running.
//!
//! This file owns those elements, the switch's pads and the probe that counts the source's
//! buffers. It must not decide when to switch, stop or open: the policy does.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use gstreamer as gst;
use gstreamer::prelude::*;

use crate::MediaError;

/// The name of the `input-selector` that marks where the source ends in a launch line.
pub const SWITCH_NAME: &str = "source-switch";

/// The switch in gst-launch text, as [`crate::launch::describe`] puts it between the source
/// and the encoder.
pub const SWITCH: &str = "input-selector name=source-switch";

/// The placeholder picture: colour bars, the usual "no signal" card.
const PLACEHOLDER_PATTERN: &str = "smpte";

/// The placeholder's caps when the source has never delivered any (it failed at once): the
/// encoder starts at this size and changes to the camera's when it comes.
const FALLBACK_CAPS: &str = "video/x-raw,format=I420,width=640,height=480,framerate=30/1";

/// The capture's source part, its placeholder and the switch between them.
pub struct SourceSwitch {
    /// The capture pipeline, for its clock and base time.
    pipeline: gst::Pipeline,
    /// The `input-selector`.
    selector: gst::Element,
    /// The switch's pad the source feeds.
    source_pad: gst::Pad,
    /// The switch's pad the placeholder feeds.
    placeholder_pad: gst::Pad,
    /// The source's elements, downstream first (the order a bin changes states in).
    source: Vec<gst::Element>,
    /// The placeholder's elements, downstream first: capsfilter, videotestsrc.
    placeholder: [gst::Element; 2],
    /// Buffers the source has delivered to the switch since the capture was built.
    frames: Arc<AtomicU64>,
    /// The caps the source last delivered, which the placeholder copies.
    caps: Arc<Mutex<Option<gst::Caps>>>,
    /// The source, not the placeholder, is what the encoder is fed.
    on_screen: Arc<AtomicBool>,
}

impl SourceSwitch {
    /// Finds the switch in a parsed launch line (still in NULL) and sets it up: the source's
    /// elements locked, the placeholder added and linked. `Ok(None)` when the line has none.
    pub fn find(pipeline: &gst::Pipeline) -> Result<Option<SourceSwitch>, MediaError> {
        let Some(selector) = pipeline.by_name(SWITCH_NAME) else {
            return Ok(None);
        };
        let fail = |what: &str| MediaError::Pipeline(format!("{SWITCH_NAME}: {what}"));
        let source_pad = selector
            .sink_pads()
            .into_iter()
            .find(|p| p.is_linked())
            .ok_or_else(|| fail("nothing feeds it"))?;
        // Inactive pads drop their buffers instead of waiting for the active one, which may
        // have stalled.
        selector.set_property("sync-streams", false);
        let shared = downstream_of(&selector);
        let source = source_elements(pipeline, &source_pad, &shared);
        if source.is_empty() {
            return Err(fail("no source before it"));
        }
        for e in &source {
            e.set_locked_state(true);
        }

        let test = gst::ElementFactory::make("videotestsrc")
            .name("placeholder-src")
            .property("is-live", true)
            .property_from_str("pattern", PLACEHOLDER_PATTERN)
            .build()
            .map_err(|_| MediaError::MissingElement("videotestsrc".into()))?;
        let filter = gst::ElementFactory::make("capsfilter")
            .name("placeholder-caps")
            .build()
            .map_err(|_| MediaError::MissingElement("capsfilter".into()))?;
        pipeline
            .add_many([&test, &filter])
            .map_err(|e| fail(&format!("adding the placeholder: {e}")))?;
        test.link(&filter)
            .map_err(|e| fail(&format!("linking the placeholder: {e}")))?;
        let placeholder_pad = selector
            .request_pad_simple("sink_%u")
            .ok_or_else(|| fail("no pad for the placeholder"))?;
        filter
            .static_pad("src")
            .ok_or_else(|| fail("capsfilter without src"))?
            .link(&placeholder_pad)
            .map_err(|e| fail(&format!("linking the placeholder: {e:?}")))?;
        for e in [&filter, &test] {
            e.set_locked_state(true);
        }
        selector.set_property("active-pad", &source_pad);

        let frames = Arc::new(AtomicU64::new(0));
        let caps = Arc::new(Mutex::new(None));
        let (count, seen) = (frames.clone(), caps.clone());
        // On the source's own pad: dropping its EOS there, before the switch's pad has
        // taken it, leaves the switch's sticky events alone.
        let probed = source_pad.peer().unwrap_or_else(|| source_pad.clone());
        probed.add_probe(
            gst::PadProbeType::BUFFER
                | gst::PadProbeType::BUFFER_LIST
                | gst::PadProbeType::EVENT_DOWNSTREAM,
            move |_, info| match &info.data {
                Some(gst::PadProbeData::Event(ev)) => match ev.view() {
                    // A source that ends has stopped delivering: the stall check sees it. Its
                    // EOS must not reach the encoder, which would end every viewer's stream.
                    gst::EventView::Eos(_) => gst::PadProbeReturn::Handled,
                    gst::EventView::Caps(c) => {
                        if let Ok(mut slot) = seen.lock() {
                            *slot = Some(c.caps_owned());
                        }
                        gst::PadProbeReturn::Ok
                    }
                    _ => gst::PadProbeReturn::Ok,
                },
                _ => {
                    count.fetch_add(1, Ordering::Relaxed);
                    gst::PadProbeReturn::Ok
                }
            },
        );
        Ok(Some(SourceSwitch {
            pipeline: pipeline.clone(),
            selector,
            source_pad,
            placeholder_pad,
            source,
            placeholder: [filter, test],
            frames,
            caps,
            on_screen: Arc::new(AtomicBool::new(true)),
        }))
    }

    /// The names of the source's elements (direct children of the pipeline): an error from
    /// one of them, or from inside one, is the source's.
    pub fn element_names(&self) -> HashSet<String> {
        self.source.iter().map(|e| e.name().to_string()).collect()
    }

    /// Whether the source, not the placeholder, is what the encoder is fed: shared with the
    /// encoded frame count, which counts only the real picture.
    pub fn on_screen(&self) -> Arc<AtomicBool> {
        self.on_screen.clone()
    }

    /// Buffers the source has delivered since the capture was built.
    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }

    /// Starts the source, in a pipeline that is playing.
    pub fn open(&self) -> Result<(), MediaError> {
        start(&self.pipeline, &self.source)
            .map_err(|e| MediaError::Pipeline(format!("the camera source did not start: {e}")))
    }

    /// Stops the source.
    pub fn stop(&self) {
        stop(&self.source);
    }

    /// Feeds the encoder the placeholder, at the source's caps.
    pub fn show_placeholder(&self) -> Result<(), MediaError> {
        let caps = self
            .caps
            .lock()
            .ok()
            .and_then(|c| c.clone())
            .map(|c| placeholder_caps(&c))
            .unwrap_or_else(|| {
                FALLBACK_CAPS
                    .parse()
                    .unwrap_or_else(|_| gst::Caps::new_any())
            });
        let [filter, _] = &self.placeholder;
        filter.set_property("caps", &caps);
        start(&self.pipeline, &self.placeholder)
            .map_err(|e| MediaError::Pipeline(format!("the placeholder did not start: {e}")))?;
        self.selector
            .set_property("active-pad", &self.placeholder_pad);
        self.on_screen.store(false, Ordering::Relaxed);
        Ok(())
    }

    /// Feeds the encoder the source again and stops the placeholder.
    pub fn show_source(&self) {
        self.selector.set_property("active-pad", &self.source_pad);
        self.on_screen.store(true, Ordering::Relaxed);
        stop(&self.placeholder);
    }
}

impl Drop for SourceSwitch {
    fn drop(&mut self) {
        // Locked elements do not follow the pipeline to NULL.
        stop(&self.source);
        stop(&self.placeholder);
    }
}

/// Brings locked `elements` (downstream first) to PLAYING on the pipeline's clock.
fn start(pipeline: &gst::Pipeline, elements: &[gst::Element]) -> Result<(), String> {
    let clock = pipeline.clock();
    let base = pipeline.base_time();
    for e in elements {
        if let Some(clock) = &clock {
            let _ = e.set_clock(Some(clock));
        }
        if let Some(base) = base {
            e.set_base_time(base);
        }
        if let Err(err) = e.set_state(gst::State::Playing) {
            stop(elements);
            return Err(format!("{}: {err}", e.name()));
        }
    }
    Ok(())
}

/// Brings `elements` to NULL, downstream first, as a bin would.
fn stop(elements: &[gst::Element]) {
    for e in elements {
        let _ = e.set_state(gst::State::Null);
    }
}

/// The caps the placeholder produces for a source delivering `caps`: the same raw format,
/// size, rate and colour description, so that the encoder sees no change when the switch
/// flips. Fields `videotestsrc` cannot produce are left out.
fn placeholder_caps(caps: &gst::Caps) -> gst::Caps {
    let Some(s) = caps.structure(0) else {
        return caps.clone();
    };
    let mut out = gst::Structure::new_empty("video/x-raw");
    for field in [
        "format",
        "width",
        "height",
        "framerate",
        "pixel-aspect-ratio",
        "colorimetry",
        "chroma-site",
        "interlace-mode",
    ] {
        if let Ok(v) = s.value(field) {
            out.set_value(field, v.clone());
        }
    }
    gst::Caps::builder_full().structure(out).build()
}

/// Every element downstream of `from`, itself included.
fn downstream_of(from: &gst::Element) -> HashSet<gst::Element> {
    let mut seen = HashSet::new();
    let mut todo = vec![from.clone()];
    while let Some(e) = todo.pop() {
        if !seen.insert(e.clone()) {
            continue;
        }
        for pad in e.src_pads() {
            if let Some(next) = pad.peer().and_then(|p| p.parent_element()) {
                todo.push(next);
            }
        }
    }
    seen
}

/// The pipeline's elements outside `shared`, downstream first: first those reached walking
/// upstream from `pad`, then any left (linked only once their pads appear).
fn source_elements(
    pipeline: &gst::Pipeline,
    pad: &gst::Pad,
    shared: &HashSet<gst::Element>,
) -> Vec<gst::Element> {
    let mut order: Vec<gst::Element> = Vec::new();
    let mut todo: std::collections::VecDeque<gst::Element> = pad
        .peer()
        .and_then(|p| p.parent_element())
        .into_iter()
        .collect();
    while let Some(e) = todo.pop_front() {
        if shared.contains(&e) || order.contains(&e) {
            continue;
        }
        for sink in e.sink_pads() {
            if let Some(prev) = sink.peer().and_then(|p| p.parent_element()) {
                todo.push_back(prev);
            }
        }
        order.push(e);
    }
    for e in pipeline.children() {
        if let Ok(e) = e.downcast::<gst::Element>() {
            if !shared.contains(&e) && !order.contains(&e) {
                order.push(e);
            }
        }
    }
    order
}
