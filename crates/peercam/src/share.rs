//! Sharing the camera: the link to open, as a QR code a phone's camera reads off a screen
//! (SVG for the page's Share control and `/api/share.svg`, text for `peercam token --qr`), and
//! the link as the person asking reached the device.
//!
//! Pure: it must not decide who may see the link (the access check in front of the routes
//! does) and must not log it (it carries the token).

use qrcode::render::{svg, unicode};
use qrcode::{EcLevel, QrCode};

/// The QR code of `link` as an SVG document (dark modules on white, with the quiet zone a
/// reader needs). `None` only for a link too long for any QR code.
pub fn qr_svg(link: &str) -> Option<String> {
    let code = QrCode::with_error_correction_level(link.as_bytes(), EcLevel::M).ok()?;
    Some(
        code.render::<svg::Color>()
            .min_dimensions(240, 240)
            .dark_color(svg::Color("#000000"))
            .light_color(svg::Color("#ffffff"))
            .build(),
    )
}

/// The QR code of `link` for a terminal: two rows of modules per line of block characters,
/// dark on light as printed on a dark terminal (the light modules drawn).
pub fn qr_text(link: &str) -> Option<String> {
    let code = QrCode::with_error_correction_level(link.as_bytes(), EcLevel::M).ok()?;
    Some(
        code.render::<unicode::Dense1x2>()
            .dark_color(unicode::Dense1x2::Light)
            .light_color(unicode::Dense1x2::Dark)
            .build(),
    )
}

/// The page's link as the person asking reached the device: `scheme://<host>/`, with the
/// token when one is needed; `host` is the request's `Host` header, used only when it is a
/// plain host and port (anything else gives `None`, and the caller falls back to the link the
/// device logs).
pub fn link_for_host(tls: bool, host: &str, token: Option<&str>) -> Option<String> {
    let plain = !host.is_empty()
        && host.len() <= 255
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c));
    if !plain {
        return None;
    }
    let scheme = if tls { "https" } else { "http" };
    Some(match token {
        Some(t) => format!("{scheme}://{host}/?token={t}"),
        None => format!("{scheme}://{host}/"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_becomes_an_svg_and_a_terminal_code() {
        let link = format!("https://porch-cam.local:8080/?token={}", "ab".repeat(32));
        let svg = qr_svg(&link).unwrap();
        assert!(
            svg.contains("<svg") && svg.ends_with("</svg>"),
            "{svg:.200}"
        );
        let text = qr_text(&link).unwrap();
        // A version-5 or larger code: dozens of lines of block characters.
        assert!(text.lines().count() > 15, "{text}");
        assert!(text.chars().any(|c| c == '\u{2588}' || c == '\u{2580}'));
        assert!(qr_svg(&"x".repeat(5000)).is_none());
    }

    #[test]
    fn the_link_follows_the_host_the_person_used() {
        assert_eq!(
            link_for_host(false, "192.0.2.7:8080", Some("t0k")).as_deref(),
            Some("http://192.0.2.7:8080/?token=t0k")
        );
        assert_eq!(
            link_for_host(true, "[fe80::1]:8080", None).as_deref(),
            Some("https://[fe80::1]:8080/")
        );
        assert_eq!(link_for_host(true, "evil.example/x?y", None), None);
        assert_eq!(link_for_host(true, "", None), None);
        assert_eq!(link_for_host(true, "a b", None), None);
    }
}
