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

/// Offers retransmission (RFC 4588) for payload type `apt` under payload type `rtx`: adds
/// `rtx` to the format list of the m-line listing `apt`, and its `a=rtpmap` and `a=fmtp`
/// lines after `apt`'s own. Unchanged when `apt` is not offered, already has an `rtx`
/// payload, or `rtx` is taken.
///
/// webrtcbin 1.22 offers retransmission for the first format of a section only.
pub fn add_rtx(sdp: &str, apt: u8, rtx: u8) -> String {
    let session = match crate::parse::parse(sdp) {
        Ok(s) => s,
        Err(_) => return sdp.to_owned(),
    };
    let Some(m) = session.media.iter().find(|m| m.formats.contains(&apt)) else {
        return sdp.to_owned();
    };
    let has_rtx = m.formats.iter().any(|pt| {
        m.rtpmap
            .get(pt)
            .is_some_and(|r| r.encoding.eq_ignore_ascii_case("rtx"))
            && m.fmtp.get(pt).and_then(|f| f.get("apt")) == Some(&apt.to_string())
    });
    let taken = session.media.iter().any(|m| m.formats.contains(&rtx));
    if has_rtx || taken {
        return sdp.to_owned();
    }
    let own = [
        format!("a=rtpmap:{apt} "),
        format!("a=rtcp-fb:{apt} "),
        format!("a=fmtp:{apt} "),
    ];
    let lines: Vec<&str> = sdp.split_inclusive('\n').collect();
    // The section of the m-line listing `apt`: from it to the next m-line.
    let listed = |l: &str| {
        l.starts_with("m=")
            && l.split_whitespace()
                .skip(3)
                .any(|f| f.parse::<u8>().ok() == Some(apt))
    };
    let Some(start) = lines.iter().position(|l| listed(l)) else {
        return sdp.to_owned();
    };
    let end = lines[start + 1..]
        .iter()
        .position(|l| l.starts_with("m="))
        .map_or(lines.len(), |i| start + 1 + i);
    let after = lines[start..end]
        .iter()
        .rposition(|l| own.iter().any(|p| l.starts_with(p.as_str())))
        .map_or(start, |i| start + i);
    let eol = if lines[start].ends_with("\r\n") {
        "\r\n"
    } else {
        "\n"
    };
    let mut out = String::with_capacity(sdp.len() + 64);
    for (i, line) in lines.iter().enumerate() {
        if i == start {
            let body = line.trim_end_matches(['\r', '\n']);
            out.push_str(&format!("{body} {rtx}{}", &line[body.len()..]));
        } else {
            out.push_str(line);
        }
        if i == after {
            if !line.ends_with('\n') {
                out.push_str(eol);
            }
            out.push_str(&format!(
                "a=rtpmap:{rtx} rtx/90000{eol}a=fmtp:{rtx} apt={apt}{eol}"
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO_CODECS: &str = "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 97 98\r\n\
        a=rtpmap:96 H264/90000\r\na=rtcp-fb:96 nack\r\n\
        a=rtpmap:97 VP8/90000\r\na=rtcp-fb:97 nack\r\na=rtcp-fb:97 nack pli\r\n\
        a=rtpmap:98 rtx/90000\r\na=fmtp:98 apt=96\r\na=mid:video0\r\n";

    #[test]
    fn retransmission_is_added_for_the_second_codec() {
        let out = add_rtx(TWO_CODECS, 97, 99);
        assert_eq!(
            out,
            "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99\r\n\
             a=rtpmap:96 H264/90000\r\na=rtcp-fb:96 nack\r\n\
             a=rtpmap:97 VP8/90000\r\na=rtcp-fb:97 nack\r\na=rtcp-fb:97 nack pli\r\n\
             a=rtpmap:99 rtx/90000\r\na=fmtp:99 apt=97\r\n\
             a=rtpmap:98 rtx/90000\r\na=fmtp:98 apt=96\r\na=mid:video0\r\n"
        );
        let session = crate::parse(&out).unwrap();
        let choice = crate::choose::in_offer(
            &crate::parse(&out.replace("a=mid:video0", "a=recvonly")).unwrap(),
            &[crate::Codec::Vp8],
        )
        .unwrap();
        assert_eq!((choice.pt, choice.rtx), (97, Some(99)));
        assert_eq!(session.media[0].formats, [96, 97, 98, 99]);
        // Once is enough.
        assert_eq!(add_rtx(&out, 97, 99), out);
    }

    #[test]
    fn retransmission_is_not_added_where_it_is_there_or_cannot_be() {
        // Already there (96 has 98), not offered (100), or the number taken (98).
        assert_eq!(add_rtx(TWO_CODECS, 96, 99), TWO_CODECS);
        assert_eq!(add_rtx(TWO_CODECS, 100, 99), TWO_CODECS);
        assert_eq!(add_rtx(TWO_CODECS, 97, 98), TWO_CODECS);
        assert_eq!(add_rtx("garbage", 97, 99), "garbage");
    }

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
