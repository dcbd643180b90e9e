//! ICE candidates between the protocol's JSON form and webrtcbin's `(mline, string)` form,
//! and resolution of browsers' mDNS (`name.local`) host candidates.
//!
//! Browsers hide their addresses behind random `.local` names. webrtcbin 1.22 would hand such
//! a name to the system resolver (a unicast DNS query, and a Pi may have no nss-mdns), so the
//! device resolves them itself over multicast DNS and gives webrtcbin the address.

use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The JSON of an `RTCIceCandidate` as browsers send it (`JSON.stringify(candidate)`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CandidateJson {
    /// The `candidate:` line; empty marks the end of candidates.
    #[serde(default)]
    pub candidate: String,
    /// The media section's index.
    #[serde(default, rename = "sdpMLineIndex")]
    pub sdp_m_line_index: Option<u32>,
    /// The media section's mid.
    #[serde(default)]
    pub sdp_mid: Option<String>,
}

/// A remote candidate ready for webrtcbin, or why it is skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Remote {
    /// Add this candidate.
    Add { mline: u32, candidate: String },
    /// The candidate's address is an mDNS name to resolve first.
    Mdns {
        mline: u32,
        candidate: String,
        host: String,
    },
    /// End-of-candidates or nothing usable.
    Skip,
}

/// Error for candidate JSON that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad ICE candidate: {0}")]
pub struct BadCandidate(String);

/// Encodes a local candidate from webrtcbin for the wire.
pub fn to_json(mline: u32, candidate: &str) -> String {
    serde_json::json!({
        "candidate": candidate,
        "sdpMLineIndex": mline,
        "sdpMid": serde_json::Value::Null,
    })
    .to_string()
}

/// `sdp` with each of `candidates` (webrtcbin's `(mline, "candidate:…")`) as an
/// `a=candidate:` line at the end of its media section, unless already there. A peer given
/// the candidates with the description can check the path as soon as it has applied it,
/// instead of after a further relay of trickled candidates. Candidates for a media section
/// the SDP does not have are left out.
pub fn with_candidates(sdp: &str, candidates: &[(u32, String)]) -> String {
    let mut out = String::with_capacity(sdp.len() + 128 * candidates.len());
    // The media section being copied (`None` before the first `m=`) and its lines so far.
    let mut section: Option<u32> = None;
    let mut seen: Vec<&str> = Vec::new();
    let finish = |out: &mut String, section: Option<u32>, seen: &[&str]| {
        let Some(index) = section else { return };
        let mut added: Vec<String> = Vec::new();
        for (_, candidate) in candidates.iter().filter(|(m, _)| *m == index) {
            let line = format!("a={}", candidate.trim());
            if !seen.contains(&line.as_str()) && !added.contains(&line) {
                out.push_str(&line);
                out.push_str("\r\n");
                added.push(line);
            }
        }
    };
    for line in sdp.lines() {
        if line.starts_with("m=") {
            finish(&mut out, section, &seen);
            section = Some(section.map_or(0, |i| i + 1));
            seen.clear();
        }
        seen.push(line);
        out.push_str(line);
        out.push_str("\r\n");
    }
    finish(&mut out, section, &seen);
    out
}

/// Decodes a remote candidate from the wire.
pub fn from_json(text: &str) -> Result<Remote, BadCandidate> {
    let c: CandidateJson = serde_json::from_str(text).map_err(|e| BadCandidate(format!("{e}")))?;
    let candidate = c.candidate.trim();
    if candidate.is_empty() {
        return Ok(Remote::Skip);
    }
    let mline = c.sdp_m_line_index.unwrap_or(0);
    if mline > 16 {
        return Err(BadCandidate(format!("m-line index {mline} out of range")));
    }
    // candidate:<foundation> <component> <transport> <priority> <address> <port> typ ...
    let fields: Vec<&str> = candidate.split_ascii_whitespace().collect();
    if fields.len() < 8 || !fields[0].starts_with("candidate:") {
        return Err(BadCandidate(format!(
            "not a candidate line: {candidate:.80}"
        )));
    }
    let address = fields[4];
    if address.to_ascii_lowercase().ends_with(".local") {
        return Ok(Remote::Mdns {
            mline,
            candidate: candidate.to_owned(),
            host: address.to_owned(),
        });
    }
    if address.parse::<IpAddr>().is_err() {
        // Any other name would go to unicast DNS; a LAN camera has no business asking.
        return Ok(Remote::Skip);
    }
    Ok(Remote::Add {
        mline,
        candidate: candidate.to_owned(),
    })
}

/// Replaces the address field of a candidate line.
pub fn with_address(candidate: &str, ip: IpAddr) -> String {
    candidate
        .split_ascii_whitespace()
        .enumerate()
        .map(|(i, f)| if i == 4 { ip.to_string() } else { f.to_owned() })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Resolves `name.local` over multicast DNS; blocking, bounded by `timeout`.
pub fn resolve_mdns(
    daemon: &mdns_sd::ServiceDaemon,
    host: &str,
    timeout: Duration,
) -> Option<IpAddr> {
    let fqdn = format!("{}.", host.trim_end_matches('.'));
    let rx = daemon
        .resolve_hostname(&fqdn, Some(timeout.as_millis() as u64))
        .ok()?;
    let deadline = std::time::Instant::now() + timeout;
    while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(mdns_sd::HostnameResolutionEvent::AddressesFound(_, addrs)) => {
                let mut addrs: Vec<IpAddr> = addrs.iter().map(|a| a.to_ip_addr()).collect();
                // Prefer IPv4: it is what the device's host candidates mostly are.
                addrs.sort_by_key(|a| !a.is_ipv4());
                if let Some(a) = addrs.first() {
                    return Some(*a);
                }
            }
            Ok(mdns_sd::HostnameResolutionEvent::SearchTimeout(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_go_to_the_end_of_their_media_section() {
        let sdp = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:video0\r\nm=audio 0 UDP/TLS/RTP/SAVPF 0\r\na=mid:audio1\r\n";
        let c0 = "candidate:1 1 UDP 2015363327 127.0.0.1 40000 typ host".to_owned();
        let c1 = "candidate:2 1 UDP 2015363327 127.0.0.1 40002 typ host".to_owned();
        let out = with_candidates(
            sdp,
            &[(0, c0.clone()), (1, c1.clone()), (0, c0.clone()), (5, c1)],
        );
        assert_eq!(
            out,
            "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:video0\r\n\
             a=candidate:1 1 UDP 2015363327 127.0.0.1 40000 typ host\r\n\
             m=audio 0 UDP/TLS/RTP/SAVPF 0\r\na=mid:audio1\r\n\
             a=candidate:2 1 UDP 2015363327 127.0.0.1 40002 typ host\r\n"
        );
        // Already present: not repeated.
        assert_eq!(with_candidates(&out, &[(0, c0)]), out);
        // No media sections: nothing to add to.
        assert_eq!(
            with_candidates("v=0\r\n", &[(0, "candidate:x".into())]),
            "v=0\r\n"
        );
    }

    const HOST: &str = "candidate:842163049 1 udp 1677729535 192.0.2.7 3478 typ host generation 0";

    #[test]
    fn browser_candidates_decode() {
        let json = format!(
            r#"{{"candidate":"{HOST}","sdpMid":"0","sdpMLineIndex":0,"usernameFragment":"x"}}"#
        );
        assert_eq!(
            from_json(&json),
            Ok(Remote::Add {
                mline: 0,
                candidate: HOST.into()
            })
        );
        assert_eq!(from_json(r#"{"candidate":""}"#), Ok(Remote::Skip));
        let mdns = r#"{"candidate":"candidate:1 1 udp 2122260223 3f9c0e1a-2b.local 54321 typ host","sdpMLineIndex":1}"#;
        assert!(matches!(
            from_json(mdns),
            Ok(Remote::Mdns { mline: 1, ref host, .. }) if host == "3f9c0e1a-2b.local"
        ));
        let named = r#"{"candidate":"candidate:1 1 udp 1 example.org 5 typ host"}"#;
        assert_eq!(from_json(named), Ok(Remote::Skip));
    }

    #[test]
    fn junk_is_refused() {
        assert!(from_json("nope").is_err());
        assert!(from_json(r#"{"candidate":"hello"}"#).is_err());
        assert!(from_json(
            r#"{"candidate":"candidate:1 1 udp 1 1.2.3.4 5 typ host","sdpMLineIndex":99}"#
        )
        .is_err());
    }

    #[test]
    fn address_is_replaced_and_local_roundtrips() {
        let c = "candidate:1 1 udp 2122260223 abc.local 54321 typ host generation 0";
        assert_eq!(
            with_address(c, "127.0.0.1".parse().unwrap()),
            "candidate:1 1 udp 2122260223 127.0.0.1 54321 typ host generation 0"
        );
        let json = to_json(0, HOST);
        assert_eq!(
            from_json(&json),
            Ok(Remote::Add {
                mline: 0,
                candidate: HOST.into()
            })
        );
    }
}
