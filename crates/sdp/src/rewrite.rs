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
}
