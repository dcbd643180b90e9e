//! Whether a remote offer or answer can be used, and if not, why, in a sentence the person
//! behind the browser can act on. Everything here runs before GStreamer sees the text.

use crate::choose::{self, Choice, Codec};
use crate::parse::{parse, Media, SdpError, Session};

/// Hash functions a DTLS fingerprint may use (RFC 8122), with their digest length in bytes.
const HASHES: &[(&str, usize)] = &[
    ("sha-1", 20),
    ("sha-224", 28),
    ("sha-256", 32),
    ("sha-384", 48),
    ("sha-512", 64),
];

/// A description the camera cannot use. The text is for the person: it is sent to the
/// member as `error NEGOTIATION_FAILED` and shown by the page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unusable(pub String);

impl From<SdpError> for Unusable {
    fn from(e: SdpError) -> Self {
        Unusable(format!("the description could not be read: {e}"))
    }
}

/// An offer (the camera answers it): parsed, checked, and the video format the camera will
/// send chosen among `codecs` (in the camera's order of preference).
pub fn check_offer(text: &str, codecs: &[Codec]) -> Result<(Session, Choice), Unusable> {
    let session = parse(text)?;
    let choice = choose::in_offer(&session, codecs).ok_or_else(|| no_codec(&session, codecs))?;
    // `in_offer` only picks an accepted section.
    transport(&session.media[choice.mline as usize])?;
    Ok((session, choice))
}

/// An answer to the camera's `offer` (its video in the offer's first video section, in the
/// formats of `codecs` it listed): parsed, and the format it accepted for that video chosen
/// ([`choose::in_answer`]).
pub fn check_answer(
    text: &str,
    offer: &Session,
    codecs: &[Codec],
) -> Result<(Session, Choice), Unusable> {
    let session = parse(text)?;
    let names: Vec<&str> = codecs.iter().map(|c| c.name()).collect();
    let names = names.join(" or ");
    let mline = offer
        .media
        .iter()
        .position(|m| m.kind == "video")
        .ok_or_else(|| Unusable("the camera's offer had no video section".into()))?;
    let Some(video) = session.media.get(mline) else {
        return Err(Unusable(
            "the answer has no video section for the camera's video".into(),
        ));
    };
    if !video.accepted() || !video.direction.receives() {
        return Err(Unusable(format!(
            "this browser declined the camera's video: it can decode neither of the formats \
             the camera offered ({names}); a browser with H.264 or VP8 video (any current \
             Chrome, Edge, Safari or Firefox) can watch"
        )));
    }
    let choice = choose::in_answer(offer, &session, codecs).ok_or_else(|| {
        Unusable(format!(
            "the answer chose a video format the camera did not offer (it offered {names})"
        ))
    })?;
    transport(video)?;
    Ok((session, choice))
}

/// ICE credentials and a DTLS fingerprint: without them nothing can connect, and GStreamer
/// would only find out after waiting.
fn transport(m: &Media) -> Result<(), Unusable> {
    // RFC 8839: ufrag 4 to 256 ice-chars, pwd 22 to 256.
    let ice_chars = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    };
    match m.ice_ufrag.as_deref() {
        None => {
            return Err(Unusable(
                "the description has no ICE username (a=ice-ufrag)".into(),
            ))
        }
        Some(u) if !(4..=256).contains(&u.len()) || !ice_chars(u) => {
            return Err(Unusable(
                "the ICE username (a=ice-ufrag) must be 4 to 256 letters, digits, + or /".into(),
            ))
        }
        Some(_) => {}
    }
    match m.ice_pwd.as_deref() {
        None => {
            return Err(Unusable(
                "the description has no ICE password (a=ice-pwd)".into(),
            ))
        }
        Some(p) if !(22..=256).contains(&p.len()) || !ice_chars(p) => {
            return Err(Unusable(
                "the ICE password (a=ice-pwd) must be 22 to 256 letters, digits, + or /".into(),
            ))
        }
        Some(_) => {}
    }
    let Some((hash, value)) = &m.fingerprint else {
        return Err(Unusable(
            "the description has no DTLS fingerprint (a=fingerprint), so its media cannot be \
             encrypted"
                .into(),
        ));
    };
    let Some(&(_, len)) = HASHES.iter().find(|(h, _)| h == hash) else {
        return Err(Unusable(format!(
            "the DTLS fingerprint uses {hash:?}; the camera knows sha-1, sha-224, sha-256, \
             sha-384 and sha-512"
        )));
    };
    let bytes: Vec<&str> = value.split(':').collect();
    let hex = |b: &&str| b.len() == 2 && b.bytes().all(|c| c.is_ascii_hexdigit());
    if bytes.len() != len || !bytes.iter().all(hex) {
        return Err(Unusable(format!(
            "the {hash} DTLS fingerprint must be {len} hex bytes separated by colons"
        )));
    }
    if let Some(setup) = m.setup.as_deref() {
        if !matches!(setup, "actpass" | "active" | "passive") {
            return Err(Unusable(format!(
                "a=setup:{setup} is not one of actpass, active or passive"
            )));
        }
    }
    Ok(())
}

/// The sentence for an offer with nothing the camera can send.
fn no_codec(session: &Session, codecs: &[Codec]) -> Unusable {
    let names: Vec<&str> = codecs.iter().map(|c| c.name()).collect();
    let wanted = names.join(" or ");
    let video: Vec<&Media> = session
        .media
        .iter()
        .filter(|m| m.kind == "video" && m.accepted())
        .collect();
    if video.is_empty() {
        return Unusable(format!(
            "the offer has no video section the camera could send {wanted} on"
        ));
    }
    if !video.iter().any(|m| m.direction.receives()) {
        return Unusable(
            "the offer's video is send-only or inactive: it does not want to receive the \
             camera's video"
                .into(),
        );
    }
    Unusable(format!(
        "this browser offered no {wanted} video the camera can send (H.264 must be in \
         packetization mode 1)"
    ))
}

#[cfg(test)]
mod tests;
