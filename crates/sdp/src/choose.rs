//! Which video format the camera sends: in answer to an offer, the first of the camera's
//! codecs, in its order of preference, that a receiving video section of the offer lists,
//! and among several payload types of that codec the one that suits a browser best; after
//! its own offer, the one of the offered formats the answer accepted.

use crate::parse::{Media, Session};

/// A video codec the camera can send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// H.264 in packetization mode 1 (RFC 6184), the shared hardware or x264 encode.
    H264,
    /// VP8 (RFC 7741), for browsers without H.264.
    Vp8,
}

impl Codec {
    /// The name in an rtpmap, and in sentences.
    pub fn name(self) -> &'static str {
        match self {
            Codec::H264 => "H.264",
            Codec::Vp8 => "VP8",
        }
    }

    fn encoding(self) -> &'static str {
        match self {
            Codec::H264 => "H264",
            Codec::Vp8 => "VP8",
        }
    }
}

/// The camera's choice in an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// The index of the video section.
    pub mline: u32,
    /// The payload type to send under.
    pub pt: u8,
    /// The codec.
    pub codec: Codec,
    /// The offer's `profile-level-id` for that payload (H.264), if it states one.
    pub profile_level_id: Option<String>,
    /// The offer's retransmission payload type for it (`rtx` with `apt=pt`), if any.
    pub rtx: Option<u8>,
}

/// The first receiving video section with one of `codecs`, and its best payload type.
pub fn in_offer(session: &Session, codecs: &[Codec]) -> Option<Choice> {
    for &codec in codecs {
        for (i, m) in session.media.iter().enumerate() {
            if m.kind != "video" || !m.accepted() || !m.direction.receives() {
                continue;
            }
            if let Some(choice) = best(m, codec) {
                return Some(Choice {
                    mline: i as u32,
                    ..choice
                });
            }
        }
    }
    None
}

/// What an answer accepted of the camera's offer: in the offer's first video section, the
/// first payload type the answer lists (its order of preference) that the offer listed as one
/// of `codecs`, with the answer's retransmission payload type for it. `None` when the answer
/// rejects that section or accepts none of those formats.
pub fn in_answer(offer: &Session, answer: &Session, codecs: &[Codec]) -> Option<Choice> {
    let mline = offer.media.iter().position(|m| m.kind == "video")?;
    let offered = &offer.media[mline];
    let answered = answer.media.get(mline)?;
    if answered.kind != "video" || !answered.accepted() || !answered.direction.receives() {
        return None;
    }
    answered.formats.iter().find_map(|&pt| {
        if !offered.formats.contains(&pt) {
            return None;
        }
        let map = offered.rtpmap.get(&pt)?;
        // An answer restating the format must name the same codec the offer gave it.
        if answered
            .rtpmap
            .get(&pt)
            .is_some_and(|a| !a.encoding.eq_ignore_ascii_case(&map.encoding))
        {
            return None;
        }
        let codec = codecs
            .iter()
            .copied()
            .find(|c| map.encoding.eq_ignore_ascii_case(c.encoding()) && map.clock_rate == 90000)?;
        let profile_level_id = match codec {
            Codec::H264 => offered
                .fmtp
                .get(&pt)
                .and_then(|f| f.get("profile-level-id"))
                .map(|p| p.to_ascii_lowercase()),
            Codec::Vp8 => None,
        };
        Some(Choice {
            mline: mline as u32,
            pt,
            codec,
            profile_level_id,
            rtx: rtx_for(answered, pt),
        })
    })
}

fn best(m: &Media, codec: Codec) -> Option<Choice> {
    let mut found: Option<(u8, Choice)> = None;
    for &pt in &m.formats {
        let Some(map) = m.rtpmap.get(&pt) else {
            continue;
        };
        if !map.encoding.eq_ignore_ascii_case(codec.encoding()) || map.clock_rate != 90000 {
            continue;
        }
        let fmtp = m.fmtp.get(&pt);
        let param = |k: &str| fmtp.and_then(|f| f.get(k)).map(String::as_str);
        let (rank, profile) = match codec {
            Codec::H264 => {
                // Mode 0 (one NAL unit per packet) cannot carry the encoder's slices.
                if param("packetization-mode") != Some("1") {
                    continue;
                }
                let profile = param("profile-level-id").map(str::to_ascii_lowercase);
                // Constrained baseline (42e0..) first, then baseline (4200..), then the rest.
                let rank = match profile.as_deref().and_then(|p| p.get(..4)) {
                    Some("42e0") => 0,
                    Some("4200") => 1,
                    _ => 2,
                };
                (rank, profile)
            }
            Codec::Vp8 => (0, None),
        };
        if found.as_ref().is_none_or(|(r, _)| rank < *r) {
            found = Some((
                rank,
                Choice {
                    mline: 0,
                    pt,
                    codec,
                    profile_level_id: profile,
                    rtx: rtx_for(m, pt),
                },
            ));
        }
    }
    found.map(|(_, c)| c)
}

/// The offer's `rtx` payload type whose `apt` is `pt`.
fn rtx_for(m: &Media, pt: u8) -> Option<u8> {
    m.formats.iter().copied().find(|rtx| {
        m.rtpmap
            .get(rtx)
            .is_some_and(|r| r.encoding.eq_ignore_ascii_case("rtx"))
            && m.fmtp
                .get(rtx)
                .and_then(|f| f.get("apt"))
                .and_then(|a| a.parse::<u8>().ok())
                == Some(pt)
    })
}
