//! The DTLS certificate, made at start-up: GStreamer's DTLS agent makes it on first use
//! (~100-300 ms, longer on a Pi) and keeps it for the life of the process, so making it
//! before any viewer arrives takes that out of the first viewer's wait.
//!
//! Still needed when the device hands the worker a certificate of its own (which every peer
//! presents, see `crate::certificate`): GStreamer 1.22's `dtlsdec` makes its default RSA
//! certificate as soon as the first one is created, before any `pem` can be set on it (the
//! first decoder of a worker given the device's certificate still takes 150-700 ms here).
//!
//! Blocking; the caller runs it off the loop's thread. It must not keep any element.

use std::time::Instant;

use gstreamer as gst;
use gstreamer::prelude::*;

/// Has GStreamer's DTLS agent make its certificate (by asking a throw-away decoder for it).
pub(super) fn prepare_certificate() {
    let t = Instant::now();
    if let Ok(dec) = gst::ElementFactory::make("dtlsdec").build() {
        let _ = dec.property::<Option<String>>("pem");
        log::debug!("DTLS certificate ready in {:?}", t.elapsed());
    }
}
