//! SDP that tests and benchmarks send the camera in place of a real peer's, and a speaker
//! that plays nowhere.

/// An answer to the camera's offer that passes every check but whose ICE can never
/// complete (nobody answers its credentials).
pub const DEAD_ANSWER: &str = "v=0\r\n\
o=- 1 2 IN IP4 127.0.0.1\r\n\
s=-\r\n\
t=0 0\r\n\
a=group:BUNDLE video0\r\n\
m=video 9 UDP/TLS/RTP/SAVPF 96\r\n\
c=IN IP4 0.0.0.0\r\n\
a=ice-ufrag:dead\r\n\
a=ice-pwd:deaddeaddeaddeaddeaddead\r\n\
a=fingerprint:sha-256 1F:2A:3B:4C:5D:6E:7F:80:91:A2:B3:C4:D5:E6:F7:08:19:2A:3B:4C:5D:6E:7F:80:91:A2:B3:C4:D5:E6:F7:08\r\n\
a=setup:active\r\n\
a=mid:video0\r\n\
a=recvonly\r\n\
a=rtcp-mux\r\n\
a=rtpmap:96 H264/90000\r\n";

/// Adds to the pipelines directory `dir` a speaker output `sink` that plays nowhere (at the
/// pace a sound card would), so that a device with `talkback.output = "sink"` has talkback.
pub fn add_silent_speaker(dir: &std::path::Path) {
    std::fs::create_dir_all(dir.join("speaker")).unwrap();
    std::fs::write(
        dir.join("speaker/sink.toml"),
        "description = \"nowhere\"\nlaunch = \"fakesink sync=true\"\n\
         [[elements]]\nfactory = \"fakesink\"\npackage = \"libgstreamer1.0-0\"\n",
    )
    .unwrap();
}
