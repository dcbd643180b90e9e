//! SDP text (RFC 8866, with the WebRTC attributes of RFC 8829/8839/8842) into a [`Session`]:
//! only what the camera's policy reads, every count bounded, every number range-checked by
//! its type. Lines it does not use are skipped, as SDP asks. It never panics.

use std::collections::BTreeMap;

/// Longest SDP accepted, bytes. A browser's offer with audio, video and candidates is a few
/// KiB; the signaling transport already refuses frames over 64 KiB.
pub const MAX_LEN: usize = 64 * 1024;
/// Media sections accepted in one SDP (a browser offers two or three).
pub const MAX_MEDIA: usize = 32;
/// Formats (payload types) accepted in one media section.
pub const MAX_FORMATS: usize = 64;

/// Why SDP text could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    /// Empty, not text SDP, or over [`MAX_LEN`].
    #[error("{0}")]
    NotSdp(String),
    /// A line that SDP requires to have a form does not.
    #[error("line {line}: {what}")]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong, in words.
        what: String,
    },
    /// More media sections or formats than a camera's peer could mean.
    #[error("{0}")]
    TooMany(String),
}

/// The media direction attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// `a=sendrecv`, also the default.
    #[default]
    SendRecv,
    /// `a=sendonly`.
    SendOnly,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

impl Direction {
    /// Whether the side that wrote this description receives media on it.
    pub fn receives(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::RecvOnly)
    }
}

/// An `a=rtpmap` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpMap {
    /// Encoding name as written (`H264`, `VP8`, `rtx`).
    pub encoding: String,
    /// Clock rate, Hz.
    pub clock_rate: u32,
}

/// One `m=` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Media {
    /// `video`, `audio`, `application`.
    pub kind: String,
    /// The port; 0 rejects the section.
    pub port: u16,
    /// The transport protocol (`UDP/TLS/RTP/SAVPF`).
    pub proto: String,
    /// Payload types in order of preference, as numbers (RTP media only).
    pub formats: Vec<u8>,
    /// `a=rtpmap` by payload type.
    pub rtpmap: BTreeMap<u8, RtpMap>,
    /// `a=fmtp` parameters by payload type, keys lower-cased.
    pub fmtp: BTreeMap<u8, BTreeMap<String, String>>,
    /// `a=rtcp-fb` values by payload type (`nack`, `nack pli`, `ccm fir`, `transport-cc`).
    pub rtcp_fb: BTreeMap<u8, Vec<String>>,
    /// The direction attribute.
    pub direction: Direction,
    /// `a=mid`.
    pub mid: Option<String>,
    /// `a=ice-ufrag` (this section's, else the session's).
    pub ice_ufrag: Option<String>,
    /// `a=ice-pwd` (this section's, else the session's).
    pub ice_pwd: Option<String>,
    /// `a=fingerprint` as (hash function lower-cased, value) (this section's, else the
    /// session's).
    pub fingerprint: Option<(String, String)>,
    /// `a=setup` value.
    pub setup: Option<String>,
    /// `a=bundle-only`: a port of 0 then does not reject the section.
    pub bundle_only: bool,
}

impl Media {
    /// Whether the section is in use (not rejected with port 0 or bundled-only with 0).
    pub fn accepted(&self) -> bool {
        self.port != 0 || self.bundle_only
    }
}

/// A parsed SDP: its media sections, with session-level ICE and DTLS attributes applied to
/// the sections that lack their own.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Session {
    /// The `m=` sections in order (their index is the m-line index).
    pub media: Vec<Media>,
}

/// Session-level attributes inherited by media sections.
#[derive(Default)]
struct Inherited {
    ice_ufrag: Option<String>,
    ice_pwd: Option<String>,
    fingerprint: Option<(String, String)>,
    setup: Option<String>,
}

fn bad(line: usize, what: impl Into<String>) -> SdpError {
    SdpError::BadLine {
        line,
        what: what.into(),
    }
}

/// Reads SDP text. Line ends may be CRLF or LF.
pub fn parse(text: &str) -> Result<Session, SdpError> {
    if text.len() > MAX_LEN {
        return Err(SdpError::NotSdp(format!(
            "the description is {} bytes, more than the {MAX_LEN} a camera's peer can mean",
            text.len()
        )));
    }
    let mut lines = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .enumerate()
        .map(|(i, l)| (i + 1, l))
        .filter(|(_, l)| !l.is_empty());
    match lines.next() {
        Some((_, "v=0")) => {}
        _ => {
            return Err(SdpError::NotSdp(
                "the description is not SDP (it must start with v=0)".into(),
            ))
        }
    }
    let mut session = Inherited::default();
    let mut media: Vec<Media> = Vec::new();
    for (n, line) in lines {
        let Some((kind, value)) = line.split_once('=') else {
            return Err(bad(n, "an SDP line is `x=value`"));
        };
        if kind.len() != 1 {
            return Err(bad(n, "an SDP line starts with one letter and `=`"));
        }
        match kind {
            "m" => {
                if media.len() >= MAX_MEDIA {
                    return Err(SdpError::TooMany(format!(
                        "more than {MAX_MEDIA} media sections"
                    )));
                }
                media.push(media_line(n, value)?);
            }
            "a" => {
                let (name, val) = value.split_once(':').unwrap_or((value, ""));
                match media.last_mut() {
                    Some(m) => media_attribute(n, m, name, val)?,
                    None => session_attribute(n, &mut session, name, val)?,
                }
            }
            _ => {}
        }
    }
    for m in &mut media {
        if m.ice_ufrag.is_none() {
            m.ice_ufrag = session.ice_ufrag.clone();
        }
        if m.ice_pwd.is_none() {
            m.ice_pwd = session.ice_pwd.clone();
        }
        if m.fingerprint.is_none() {
            m.fingerprint = session.fingerprint.clone();
        }
        if m.setup.is_none() {
            m.setup = session.setup.clone();
        }
    }
    Ok(Session { media })
}

fn media_line(n: usize, value: &str) -> Result<Media, SdpError> {
    let mut parts = value.split(' ').filter(|p| !p.is_empty());
    let (Some(kind), Some(port), Some(proto)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad(n, "an m= line is `m=<media> <port> <proto> <formats>`"));
    };
    // `port/count` is allowed by the grammar; the count is not used by WebRTC.
    let port = port.split('/').next().unwrap_or(port);
    let port: u16 = port.parse().map_err(|_| {
        bad(
            n,
            format!("the port {port:?} is not a number from 0 to 65535"),
        )
    })?;
    let rtp = proto.contains("RTP");
    let mut formats = Vec::new();
    for f in parts {
        if formats.len() >= MAX_FORMATS {
            return Err(SdpError::TooMany(format!(
                "more than {MAX_FORMATS} formats in one media section"
            )));
        }
        if rtp {
            formats.push(payload_type(n, f)?);
        }
    }
    Ok(Media {
        kind: kind.to_owned(),
        port,
        proto: proto.to_owned(),
        formats,
        ..Media::default()
    })
}

/// An RTP payload type: 0 to 127 (RFC 3550's 7 bits).
fn payload_type(n: usize, text: &str) -> Result<u8, SdpError> {
    match text.parse::<u32>() {
        Ok(pt) if pt <= 127 => Ok(pt as u8),
        _ => Err(bad(
            n,
            format!("the payload type {text:?} is not a number from 0 to 127"),
        )),
    }
}

fn session_attribute(n: usize, s: &mut Inherited, name: &str, val: &str) -> Result<(), SdpError> {
    match name {
        "ice-ufrag" => s.ice_ufrag = Some(val.to_owned()),
        "ice-pwd" => s.ice_pwd = Some(val.to_owned()),
        "fingerprint" => s.fingerprint = Some(fingerprint(n, val)?),
        "setup" => s.setup = Some(val.to_owned()),
        _ => {}
    }
    Ok(())
}

fn media_attribute(n: usize, m: &mut Media, name: &str, val: &str) -> Result<(), SdpError> {
    match name {
        "rtpmap" => {
            let (pt, rest) = val
                .split_once(' ')
                .ok_or_else(|| bad(n, "an rtpmap is `<pt> <encoding>/<clock rate>`"))?;
            let pt = payload_type(n, pt)?;
            let mut enc = rest.trim().split('/');
            let encoding = enc.next().unwrap_or("").to_owned();
            let clock_rate = enc
                .next()
                .and_then(|c| c.parse::<u32>().ok())
                .filter(|&c| c > 0)
                .ok_or_else(|| bad(n, format!("the rtpmap of payload {pt} has no clock rate")))?;
            if encoding.is_empty() {
                return Err(bad(
                    n,
                    format!("the rtpmap of payload {pt} names no encoding"),
                ));
            }
            m.rtpmap.insert(
                pt,
                RtpMap {
                    encoding,
                    clock_rate,
                },
            );
        }
        "fmtp" => {
            let (pt, params) = val.split_once(' ').unwrap_or((val, ""));
            let pt = payload_type(n, pt)?;
            let map = params
                .split(';')
                .filter_map(|p| {
                    let p = p.trim();
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (!k.is_empty()).then(|| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                })
                .collect();
            m.fmtp.insert(pt, map);
        }
        "rtcp-fb" => {
            let (pt, fb) = val.split_once(' ').unwrap_or((val, ""));
            // `*` applies to every format.
            let pts: Vec<u8> = if pt == "*" {
                m.formats.clone()
            } else {
                vec![payload_type(n, pt)?]
            };
            for pt in pts {
                let list = m.rtcp_fb.entry(pt).or_default();
                if list.len() < 16 {
                    list.push(fb.trim().to_owned());
                }
            }
        }
        "sendrecv" => m.direction = Direction::SendRecv,
        "sendonly" => m.direction = Direction::SendOnly,
        "recvonly" => m.direction = Direction::RecvOnly,
        "inactive" => m.direction = Direction::Inactive,
        "mid" => m.mid = Some(val.to_owned()),
        "ice-ufrag" => m.ice_ufrag = Some(val.to_owned()),
        "ice-pwd" => m.ice_pwd = Some(val.to_owned()),
        "fingerprint" => m.fingerprint = Some(fingerprint(n, val)?),
        "setup" => m.setup = Some(val.to_owned()),
        "bundle-only" => m.bundle_only = true,
        _ => {}
    }
    Ok(())
}

fn fingerprint(n: usize, val: &str) -> Result<(String, String), SdpError> {
    let (hash, value) = val
        .trim()
        .split_once(' ')
        .ok_or_else(|| bad(n, "a fingerprint is `<hash function> <hex value>`"))?;
    Ok((hash.to_ascii_lowercase(), value.trim().to_owned()))
}
