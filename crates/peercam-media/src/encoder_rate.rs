//! Reading and setting an encoder's bitrate while it runs, in each encoder's own terms: the
//! glue under [`crate::bitrate`]'s policy, and what the VP8 encode matches the H.264 one to.
//!
//! - x264enc: `bitrate`, kbit/s; applied from the next frame.
//! - openh264enc: `bitrate`, bits/s.
//! - v4l2h264enc (the Pi's): `video_bitrate` in `extra-controls`, bits/s; the V4L2 control
//!   is applied at run time by the driver.
//! - vp8enc: `target-bitrate`, bits/s.

use gstreamer as gst;
use gstreamer::prelude::*;

/// The bitrate (bits/s) `encoder` was set to; `fallback` when its element does not say in a
/// way known here.
pub fn bitrate_of(encoder: &gst::Element, fallback: u32) -> u32 {
    let Some(factory) = encoder.factory() else {
        return fallback;
    };
    let bitrate = match factory.name().as_str() {
        "x264enc" => encoder.property::<u32>("bitrate").checked_mul(1000),
        "openh264enc" => Some(encoder.property::<u32>("bitrate")),
        "v4l2h264enc" => encoder
            .property::<Option<gst::Structure>>("extra-controls")
            .and_then(|s| s.get::<i32>("video_bitrate").ok())
            .and_then(|b| u32::try_from(b).ok()),
        "vp8enc" => u32::try_from(encoder.property::<i32>("target-bitrate")).ok(),
        _ => None,
    };
    bitrate.filter(|&b| b > 0).unwrap_or(fallback)
}

/// Sets `encoder` to `bps` bits/s; whether it is an encoder whose rate is known here.
pub fn set_bitrate(encoder: &gst::Element, bps: u32) -> bool {
    let Some(factory) = encoder.factory() else {
        return false;
    };
    let bps = bps.max(1000);
    match factory.name().as_str() {
        "x264enc" => encoder.set_property("bitrate", bps / 1000),
        "openh264enc" => encoder.set_property("bitrate", bps),
        "v4l2h264enc" => {
            let mut controls = encoder
                .property::<Option<gst::Structure>>("extra-controls")
                .unwrap_or_else(|| gst::Structure::new_empty("controls"));
            controls.set("video_bitrate", i32::try_from(bps).unwrap_or(i32::MAX));
            encoder.set_property("extra-controls", &controls);
        }
        "vp8enc" => encoder.set_property("target-bitrate", i32::try_from(bps).unwrap_or(i32::MAX)),
        _ => return false,
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_encoders_rate_is_read_and_set_in_its_own_units() {
        gst::init().unwrap();
        for (factory, property, expect) in [
            ("x264enc", "bitrate", 1500u64),
            ("openh264enc", "bitrate", 1_500_000),
        ] {
            let Ok(enc) = gst::ElementFactory::make(factory).build() else {
                eprintln!("skipped: {factory} is not installed");
                continue;
            };
            assert!(set_bitrate(&enc, 1_500_000));
            assert_eq!(
                u64::from(enc.property::<u32>(property)),
                expect,
                "{factory}"
            );
            assert_eq!(bitrate_of(&enc, 7), 1_500_000, "{factory}");
        }
        if let Ok(enc) = gst::ElementFactory::make("vp8enc").build() {
            assert!(set_bitrate(&enc, 800_000));
            assert_eq!(bitrate_of(&enc, 7), 800_000);
        }
        let other = gst::ElementFactory::make("identity").build().unwrap();
        assert!(!set_bitrate(&other, 1_000_000));
        assert_eq!(bitrate_of(&other, 7), 7);
    }
}
