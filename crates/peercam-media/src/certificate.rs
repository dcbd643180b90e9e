//! The DTLS certificate a peer presents: the device's (see peercam-wire's `DtlsIdentity`),
//! set on every `dtlsdec` its webrtcbin makes, before that decoder is used.
//!
//! webrtcbin builds its DTLS elements inside transport bins it makes and adds whole (when an
//! offer or answer is made or applied), so each element added anywhere under it is walked,
//! bins and all. It must not decide which certificate to use, nor touch the SDP: webrtcbin
//! 1.22 writes a fingerprint computed from the whole PEM, key included, and the negotiation
//! replaces it with the device's (`peercam_sdp::set_fingerprint`).

use gstreamer as gst;
use gstreamer::prelude::*;

/// Has every `dtlsdec` under `webrtc` (now and whenever one is added) present `pem`
/// (certificate, then key).
pub fn present(webrtc: &gst::Element, pem: &str) {
    let Some(bin) = webrtc.downcast_ref::<gst::Bin>() else {
        return;
    };
    set_pem(webrtc, pem);
    let pem = pem.to_owned();
    bin.connect_deep_element_added(move |_, _, element| set_pem(element, &pem));
}

/// Sets `pem` on `element` if it is a `dtlsdec`, and on every `dtlsdec` inside it if it is
/// a bin.
fn set_pem(element: &gst::Element, pem: &str) {
    if is_dtlsdec(element) {
        element.set_property("pem", pem);
    }
    if let Some(bin) = element.downcast_ref::<gst::Bin>() {
        for child in bin.iterate_recurse().into_iter().flatten() {
            if is_dtlsdec(&child) {
                child.set_property("pem", pem);
            }
        }
    }
}

fn is_dtlsdec(element: &gst::Element) -> bool {
    element.factory().is_some_and(|f| f.name() == "dtlsdec")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ECDSA P-256 certificate and key, made for this test only.
    const PEM: &str = include_str!("certificate_test.pem");

    fn dtlsdecs(bin: &gst::Bin) -> Vec<gst::Element> {
        bin.iterate_recurse()
            .into_iter()
            .flatten()
            .filter(is_dtlsdec)
            .collect()
    }

    #[test]
    fn every_dtlsdec_webrtcbin_makes_presents_the_certificate() {
        gst::init().unwrap(); // tests only
        let Ok(webrtc) = gst::ElementFactory::make("webrtcbin").build() else {
            eprintln!("webrtcbin is not installed; skipped");
            return;
        };
        present(&webrtc, PEM);
        // A sending transceiver, and an offer made and applied: the transport bins exist.
        let pad = webrtc.request_pad_simple("sink_%u").unwrap();
        let caps = crate::peer::early_offer_caps();
        if let Some(t) =
            pad.property::<Option<gstreamer_webrtc::WebRTCRTPTransceiver>>("transceiver")
        {
            t.set_property("codec-preferences", &caps);
        }
        webrtc.set_state(gst::State::Ready).unwrap();
        let promise = gst::Promise::new();
        webrtc.emit_by_name::<()>("create-offer", &[&None::<gst::Structure>, &promise]);
        promise.wait();
        let offer = promise
            .get_reply()
            .and_then(|r| {
                r.get::<gstreamer_webrtc::WebRTCSessionDescription>("offer")
                    .ok()
            })
            .expect("an offer");
        let applied = gst::Promise::new();
        webrtc.emit_by_name::<()>("set-local-description", &[&offer, &applied]);
        applied.wait();
        let bin = webrtc.downcast_ref::<gst::Bin>().unwrap();
        let decs = dtlsdecs(bin);
        assert!(!decs.is_empty(), "webrtcbin made no dtlsdec");
        for dec in decs {
            assert_eq!(dec.property::<Option<String>>("pem").as_deref(), Some(PEM));
        }
        let _ = webrtc.set_state(gst::State::Null);
    }
}
