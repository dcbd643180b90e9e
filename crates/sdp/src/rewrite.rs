//! Text edits of SDP that webrtcbin needs. They only touch the lines named and keep every
//! other byte, so what the remote wrote still reaches GStreamer as written.

/// Sets `profile-level-id` in the `a=fmtp:<pt>` line of an SDP, replacing the one there or
/// adding it.
///
/// Encoders write constrained baseline as 42c0xx, browsers offer 42e0xx: the same profile to
/// a browser (WebRTC's profile parser maps both to constrained baseline), but webrtcbin
/// compares the strings. Relabelling makes webrtcbin, the stream and the answer agree; it
/// also states the stream's profile in an offer made before the stream started.
pub fn relabel_h264(sdp: &str, pt: u8, label: &str) -> String {
    let prefix = format!("a=fmtp:{pt} ");
    sdp.split_inclusive('\n')
        .map(|line| {
            if !line.starts_with(&prefix) {
                return line.to_owned();
            }
            let (body, end) = line.split_at(line.trim_end_matches(['\r', '\n']).len());
            let mut found = false;
            let mut params: Vec<String> = body[prefix.len()..]
                .split(';')
                .filter(|p| !p.trim().is_empty())
                .map(|p| match p.trim().split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("profile-level-id") => {
                        found = true;
                        format!("profile-level-id={label}")
                    }
                    _ => p.trim().to_owned(),
                })
                .collect();
            if !found {
                params.push(format!("profile-level-id={label}"));
            }
            format!("{prefix}{}{end}", params.join(";"))
        })
        .collect()
}

/// Sets every `a=fingerprint:` line of an SDP (session or media level) to `hash value`,
/// keeping each line's place and ending; an SDP without one is returned unchanged.
///
/// webrtcbin 1.22 computes the fingerprint it writes from the whole PEM it was given for
/// DTLS, key included, so it is wrong whenever the PEM holds the key as well: the one the
/// device computed from the certificate itself replaces it.
pub fn set_fingerprint(sdp: &str, hash: &str, value: &str) -> String {
    const PREFIX: &str = "a=fingerprint:";
    sdp.split_inclusive('\n')
        .map(|line| {
            if !line.starts_with(PREFIX) {
                return line.to_owned();
            }
            let end = &line[line.trim_end_matches(['\r', '\n']).len()..];
            format!("{PREFIX}{hash} {value}{end}")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stated_profile_is_added_when_the_offer_has_none() {
        let sdp = "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 H264/90000\r\n\
                   a=fmtp:96 packetization-mode=1;level-asymmetry-allowed=1\r\n";
        assert_eq!(
            relabel_h264(sdp, 96, "42c01f"),
            "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 H264/90000\r\n\
             a=fmtp:96 packetization-mode=1;level-asymmetry-allowed=1;profile-level-id=42c01f\r\n"
        );
        // Stated once, however often applied.
        let twice = relabel_h264(&relabel_h264(sdp, 96, "42c01f"), 96, "42c01f");
        assert_eq!(twice.matches("profile-level-id").count(), 1);
    }

    #[test]
    fn only_the_chosen_payload_is_relabelled() {
        let sdp = "v=0\r\na=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
                   a=fmtp:104 profile-level-id=42001f;packetization-mode=0\r\n";
        let out = relabel_h264(sdp, 102, "42c01f");
        assert_eq!(
            out,
            "v=0\r\na=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42c01f\r\n\
             a=fmtp:104 profile-level-id=42001f;packetization-mode=0\r\n"
        );
    }

    const FP: &str = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:\
                      AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89";

    #[test]
    fn every_fingerprint_line_is_replaced_and_nothing_else() {
        let sdp = "v=0\r\na=fingerprint:sha-1 00:11\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n\
                   a=fingerprint:sha-256 12:34\r\na=setup:actpass\r\n\
                   m=audio 9 UDP/TLS/RTP/SAVPF 97\r\na=fingerprint:SHA-256 56:78\r\n";
        let out = set_fingerprint(sdp, "sha-256", FP);
        assert_eq!(
            out,
            format!(
                "v=0\r\na=fingerprint:sha-256 {FP}\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n\
                 a=fingerprint:sha-256 {FP}\r\na=setup:actpass\r\n\
                 m=audio 9 UDP/TLS/RTP/SAVPF 97\r\na=fingerprint:sha-256 {FP}\r\n"
            )
        );
        // Applying it again changes nothing.
        assert_eq!(set_fingerprint(&out, "sha-256", FP), out);
    }

    #[test]
    fn line_endings_are_kept_and_an_sdp_without_a_fingerprint_is_unchanged() {
        assert_eq!(
            set_fingerprint("a=fingerprint:sha-256 12\na=mid:0", "sha-256", "AA"),
            "a=fingerprint:sha-256 AA\na=mid:0"
        );
        assert_eq!(
            set_fingerprint("a=mid:0\r\na=fingerprint:sha-256 12", "sha-256", "AA"),
            "a=mid:0\r\na=fingerprint:sha-256 AA"
        );
        let none = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=x-fingerprint:1\r\n";
        assert_eq!(set_fingerprint(none, "sha-256", FP), none);
        assert_eq!(set_fingerprint("", "sha-256", FP), "");
    }
}
