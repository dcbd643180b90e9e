//! Reading a WHEP client's trickled candidates: the body of a `PATCH` (an SDP fragment,
//! `application/trickle-ice-sdpfrag`, RFC 8840) turned into the candidate messages the camera's
//! peers take (`JSON.stringify(RTCIceCandidate)`, as nextRTC members send them), and an ICE
//! restart told apart from a trickle. Pure.

/// What a `PATCH` body asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Patch {
    /// More candidates of the session's current ICE credentials, as candidate messages.
    Trickle(Vec<String>),
    /// New ICE credentials: an ICE restart.
    Restart,
}

/// The `PATCH` body `frag` of a session whose offer was `offer`; the sentence why not when it
/// is not a fragment of that session.
pub fn read(offer: &str, frag: &str) -> Result<Patch, String> {
    let ufrag = |text: &str| {
        text.lines()
            .find_map(|l| l.trim_end().strip_prefix("a=ice-ufrag:"))
            .map(str::to_owned)
    };
    if let (Some(new), Some(old)) = (ufrag(frag), ufrag(offer)) {
        if new != old {
            return Ok(Patch::Restart);
        }
    }
    let mids = mids(offer);
    let mut section: Option<usize> = None;
    let mut mid: Option<String> = None;
    let mut out = Vec::new();
    for line in frag.lines().map(str::trim_end) {
        if line.starts_with("m=") {
            section = Some(section.map_or(0, |s| s + 1));
            mid = None;
        } else if let Some(m) = line.strip_prefix("a=mid:") {
            mid = Some(m.to_owned());
        } else if let Some(candidate) = line.strip_prefix("a=candidate:") {
            // The fragment names its media section by mid; without one, by its place.
            let index = match &mid {
                Some(m) => mids.iter().position(|x| x.as_deref() == Some(m.as_str())),
                None => section.or(Some(0)),
            }
            .filter(|&i| i < mids.len().max(1))
            .ok_or_else(|| {
                format!("the candidate names a media section the offer has not ({mid:?})")
            })?;
            out.push(
                serde_json::json!({
                    "candidate": format!("candidate:{candidate}"),
                    "sdpMid": mid,
                    "sdpMLineIndex": index,
                })
                .to_string(),
            );
        } else if !(line.is_empty() || line.starts_with("a=") || line.starts_with("m=")) {
            return Err(format!("not an SDP fragment line: {:?}", truncate(line)));
        }
    }
    Ok(Patch::Trickle(out))
}

/// The `a=mid` of each media section of `sdp`, in order.
fn mids(sdp: &str) -> Vec<Option<String>> {
    let mut out: Vec<Option<String>> = Vec::new();
    for line in sdp.lines().map(str::trim_end) {
        if line.starts_with("m=") {
            out.push(None);
        } else if let (Some(m), Some(last)) = (line.strip_prefix("a=mid:"), out.last_mut()) {
            *last = Some(m.to_owned());
        }
    }
    out
}

fn truncate(line: &str) -> &str {
    line.char_indices()
        .nth(60)
        .map_or(line, |(i, _)| &line[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
        a=group:BUNDLE 0 1\r\na=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\n\
        m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:0\r\na=recvonly\r\n\
        m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:1\r\na=recvonly\r\n";

    fn candidates(patch: Patch) -> Vec<serde_json::Value> {
        match patch {
            Patch::Trickle(c) => c.iter().map(|c| serde_json::from_str(c).unwrap()).collect(),
            Patch::Restart => panic!("read as a restart"),
        }
    }

    #[test]
    fn candidates_go_to_the_section_their_mid_names() {
        let frag = "a=ice-ufrag:abcd\r\na=ice-pwd:0123456789012345678901\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:1\r\n\
            a=candidate:1 1 udp 2122260223 10.1.2.3 50000 typ host\r\n\
            a=end-of-candidates\r\n";
        let c = candidates(read(OFFER, frag).unwrap());
        assert_eq!(c.len(), 1);
        assert_eq!(
            c[0]["candidate"],
            "candidate:1 1 udp 2122260223 10.1.2.3 50000 typ host"
        );
        assert_eq!(c[0]["sdpMLineIndex"], 1);
        assert_eq!(c[0]["sdpMid"], "1");
    }

    #[test]
    fn a_fragment_without_a_mid_means_the_first_section() {
        let frag = "a=candidate:1 1 udp 1 10.1.2.3 50000 typ host\r\n";
        let c = candidates(read(OFFER, frag).unwrap());
        assert_eq!(c[0]["sdpMLineIndex"], 0);
        // Only an end-of-candidates: nothing to hand on.
        assert_eq!(
            read(OFFER, "a=end-of-candidates\r\n").unwrap(),
            Patch::Trickle(vec![])
        );
    }

    #[test]
    fn new_credentials_are_a_restart() {
        let frag = "a=ice-ufrag:zzzz\r\na=ice-pwd:9999999999999999999999\r\n\
            m=video 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:1\r\n";
        assert_eq!(read(OFFER, frag).unwrap(), Patch::Restart);
    }

    #[test]
    fn what_is_not_a_fragment_of_the_session_is_refused() {
        let unknown_mid = "m=video 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:7\r\n\
            a=candidate:1 1 udp 1 10.1.2.3 50000 typ host\r\n";
        assert!(read(OFFER, unknown_mid)
            .unwrap_err()
            .contains("media section"));
        assert!(read(OFFER, "{\"candidate\":1}")
            .unwrap_err()
            .contains("not an SDP"));
    }
}
