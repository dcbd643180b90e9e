//! What the device and its media worker say to each other: one JSON object per line over the
//! Unix socket that is the worker's stdin.
//!
//! ```text
//! device                                   media worker (`peercam-media worker`)
//!   Start ───────────────────────────────▶   init GStreamer, choose or check the pipeline
//!         ◀─────────────────────────────── Ready | Failed, then Warm
//!   Signal (a message to a device member) ▶   peers, capture, encoder
//!         ◀─────────────────────────────── Send (a message from a device member),
//!                                          Release (a member has no peer left), Stats
//!   Snapshot (a still picture) ──────────▶   a JPEG off the capture (started briefly if
//!         ◀─────────────────────────────── Snapshot  nobody watches)
//!   Stop ────────────────────────────────▶   closes every peer and exits
//! ```
//!
//! The format is internal to peercam, and versioned: [`PROTOCOL`] travels in `Start` and in
//! `Ready`, each side reads it before anything else ([`protocol_of`]), and a device and a
//! worker from different builds refuse each other with a sentence that says so, instead of
//! misreading each other's messages.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use std::net::IpAddr;

use peercam_signaling::{Incoming, Outgoing};

use crate::config::{AudioConfig, CameraConfig, TalkbackConfig};

/// The version of this protocol. Raise it with any change to the messages below; `Start`,
/// `Ready` and `Failed` keep the `protocol` field and their shape in every version, so that
/// a mismatch can be told.
pub const PROTOCOL: u32 = 4;

/// Largest JPEG a worker sends, bytes. A camera's picture at the default quality takes a
/// tenth to half a byte a pixel, at most about 4 MB at the largest size `[snapshot]` allows
/// (3840x2160); only a noisy scene at a quality near 100 goes beyond this, and is refused with
/// a sentence saying to lower the quality or the size rather than growing every line buffer
/// for it.
pub const MAX_JPEG: usize = 8 * 1024 * 1024;

/// Longest line either side accepts, bytes. An SDP with candidates is a few KiB; a
/// `Snapshot` answer carries a JPEG of up to [`MAX_JPEG`] bytes as base64 (4 characters for
/// every 3 bytes), with room to spare for the rest of the message.
pub const MAX_LINE: usize = MAX_JPEG / 3 * 4 + 64 * 1024;

/// What the worker captures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Capture {
    /// Choose source and encoder for this configuration (probing the machine).
    Select(CameraConfig),
    /// Run this gst-launch description (a previous worker's choice, or a test's).
    Launch(String),
}

/// The microphone a worker sends, in the same pipeline as the video.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub enum AudioCapture {
    /// Video only.
    #[default]
    None,
    /// Choose the source for this configuration (looking at the machine's sound cards) among
    /// the descriptions in `pipelines/audio/` of this directory (unset: the usual places).
    Select {
        /// The `[audio]` section.
        audio: AudioConfig,
        /// The configured pipelines directory, if any.
        pipelines_dir: Option<std::path::PathBuf>,
    },
    /// Run this gst-launch description of raw audio (a test's), Opus at `bitrate_kbps`.
    Launch {
        /// The source, ending in raw audio.
        launch: String,
        /// Opus bitrate, kbit/s.
        bitrate_kbps: u32,
    },
}

/// Where a worker plays what a talking viewer sends.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub enum Talkback {
    /// Nowhere: a viewer asking to talk is told talkback is off.
    #[default]
    None,
    /// Choose the output for this configuration (looking at the machine's sound cards) among
    /// the descriptions in `pipelines/speaker/` of this directory (unset: the usual places).
    Select {
        /// The `[talkback]` section.
        talkback: TalkbackConfig,
        /// The configured pipelines directory, if any.
        pipelines_dir: Option<std::path::PathBuf>,
    },
}

/// ICE settings for every peer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceSettings {
    /// Host candidates only on these addresses (empty: every interface).
    pub addresses: Vec<IpAddr>,
    /// `stun://host:port`, if any.
    pub stun: Option<String>,
}

/// The DTLS certificate every peer of a worker presents: the device makes one (ECDSA P-256)
/// at start and hands it to each worker, so that every client can connect (some speak only
/// ECDSA cipher suites) and no worker makes a certificate of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DtlsIdentity {
    /// The certificate and then its private key, PEM, as GStreamer's `dtlsdec` takes them.
    pub pem: String,
    /// SHA-256 of the certificate's DER, uppercase hex pairs joined by `:`, as SDP's
    /// `a=fingerprint:sha-256` states it.
    pub fingerprint: String,
}

/// A worker's counts, as it reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CameraSnapshot {
    /// Peers alive.
    pub peers: usize,
    /// Branches attached.
    pub branches: usize,
    /// Peers connected.
    pub connected: usize,
    /// Encoded frames since start.
    pub frames: u64,
    /// Capture running.
    pub capturing: bool,
    /// H.264 encodes running (0 or 1: the one every H.264 viewer shares).
    #[serde(default)]
    pub h264_encoders: usize,
    /// VP8 encodes running (0 or 1: the one every VP8 viewer shares, only while one watches).
    #[serde(default)]
    pub vp8_encoders: usize,
    /// Branches fed from the VP8 encode.
    #[serde(default)]
    pub vp8_branches: usize,
    /// Small H.264 encodes running (0 or 1: the one viewers on poor links share, only while
    /// one watches it).
    #[serde(default)]
    pub small_encoders: usize,
    /// Branches fed from the small encode (or on their way to it).
    #[serde(default)]
    pub small_branches: usize,
    /// The shared encoders' rate now, kbit/s (it follows the viewers' receiver reports; 0
    /// while not capturing).
    #[serde(default)]
    pub bitrate_kbps: u32,
    /// Opus encodes running (0 or 1: the one every listener shares).
    #[serde(default)]
    pub audio_encoders: usize,
    /// Peers fed the camera's sound.
    #[serde(default)]
    pub listeners: usize,
    /// The audio source failed and was cut off (the video goes on); until capture restarts.
    #[serde(default)]
    pub audio_failed: bool,
    /// A viewer is talking: the speaker plays what it sends.
    #[serde(default)]
    pub talking: bool,
}

/// What a still picture is to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotSpec {
    /// Width and height, pixels (scaled, with borders where the shapes differ); `None`: the
    /// stream's own size.
    pub size: Option<(u32, u32)>,
    /// JPEG quality, 1 (smallest) to 100 (best).
    pub quality: u32,
}

/// A JPEG picture's bytes; base64 (standard alphabet, padded) on the wire, where JSON has no
/// bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Jpeg(pub Vec<u8>);

impl std::fmt::Debug for Jpeg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Jpeg({} bytes)", self.0.len())
    }
}

impl Serialize for Jpeg {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use base64::Engine as _;
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for Jpeg {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Jpeg, D::Error> {
        use base64::Engine as _;
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map(Jpeg)
            .map_err(serde::de::Error::custom)
    }
}

/// Everything a worker needs, sent first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerSettings {
    /// [`PROTOCOL`] of the device that sent it.
    pub protocol: u32,
    /// The camera's member id and standing conversation (names peers in logs).
    pub conversation: String,
    /// The capture to run.
    pub capture: Capture,
    /// Build the capture once before answering `Ready`, so that a broken description is a
    /// start-up error rather than a failure at the first viewer.
    pub validate: bool,
    /// ICE addresses and STUN.
    pub ice: IceSettings,
    /// A peer that has not connected within this time is released.
    pub negotiation_timeout: Duration,
    /// Log filter (RUST_LOG syntax; RUST_LOG itself still wins).
    pub log_level: String,
    /// The H.264 `profile-level-id` an earlier worker's stream had, if any: an offer made
    /// before this worker's own stream has started states it.
    #[serde(default)]
    pub stream_profile: Option<String>,
    /// The DTLS certificate every peer presents; without one, GStreamer makes its own.
    #[serde(default)]
    pub dtls: Option<DtlsIdentity>,
    /// The microphone, if any.
    #[serde(default)]
    pub audio: AudioCapture,
    /// The speaker for talkback, if any.
    #[serde(default)]
    pub talkback: Talkback,
}

/// What the chosen capture is, for the device's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chosen {
    /// The source description's name.
    pub source: String,
    /// The encoder description's name.
    pub encoder: String,
    /// One line on what was chosen and why.
    pub summary: String,
}

/// Device → worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ToWorker {
    /// The first message.
    Start(Box<WorkerSettings>),
    /// A message the hub sent to one of the device's members.
    Signal {
        /// The device member it is for (`camera`, or `camera-N` in a MESH room).
        member: String,
        /// The message.
        msg: Outgoing,
    },
    /// Someone is opening the page: load what a session needs now (plugins, element
    /// classes), so that the join finds them ready.
    Prime,
    /// Take a still picture: off the running capture, or with the capture started for it
    /// alone. Answered by [`FromWorker::Snapshot`] with the same `id`, and counted in
    /// `handled` once answered.
    Snapshot {
        /// The device's number for the request.
        id: u64,
        /// Size and quality.
        spec: SnapshotSpec,
    },
    /// Close every peer and exit.
    Stop,
}

/// Worker → device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum FromWorker {
    /// Started: the description it runs, and what was chosen when it chose.
    Ready {
        /// [`PROTOCOL`] of the worker.
        protocol: u32,
        /// gst-launch description of capture + encode.
        launch: String,
        /// Set when the worker chose source and encoder.
        chosen: Option<Chosen>,
    },
    /// Its DTLS certificate is made: a viewer it serves waits for nothing.
    Warm,
    /// Could not start; the worker exits.
    Failed {
        /// Whether choosing the pipeline failed (else building or initialising it).
        selecting: bool,
        /// What went wrong, for the user.
        error: String,
    },
    /// A message from one of the device's members to the hub.
    Send {
        /// The device member sending it.
        member: String,
        /// The message.
        msg: Incoming,
    },
    /// `member` has no peer left after leaving or being refused: a member the device was
    /// invited as may now leave its room.
    Release {
        /// The device member.
        member: String,
    },
    /// The stream's H.264 `profile-level-id`, when first seen or changed.
    Stream {
        /// As in the SDP (`42c01f`).
        profile_level_id: String,
    },
    /// Counts, whenever they or the number of messages handled changed.
    Stats {
        /// The worker's counts.
        stats: CameraSnapshot,
        /// `Signal` messages handled and `Snapshot` requests answered so far: the device
        /// knows the counts are current when this equals the number it sent.
        handled: u64,
    },
    /// The answer to [`ToWorker::Snapshot`] `id`.
    Snapshot {
        /// The request's number.
        id: u64,
        /// The picture, or why there is none (a sentence for the person who asked).
        result: Result<Jpeg, String>,
    },
}

/// One message as a line.
pub fn encode<T: Serialize>(msg: &T) -> String {
    // Plain data (strings, numbers, enums) always serialises.
    let mut line = serde_json::to_string(msg).unwrap_or_default();
    line.push('\n');
    line
}

/// Writes each message from `rx` as a line, until `rx` closes or the socket breaks.
pub async fn write_lines<T: Serialize>(
    mut write: impl tokio::io::AsyncWrite + Unpin,
    mut rx: tokio::sync::mpsc::Receiver<T>,
) {
    use tokio::io::AsyncWriteExt;
    while let Some(msg) = rx.recv().await {
        if write.write_all(encode(&msg).as_bytes()).await.is_err() {
            return;
        }
    }
}

/// The `protocol` a `Start` or `Ready` line states (0 when it states none), read without
/// decoding the rest: the first thing either side does with the other's first line.
pub fn protocol_of(line: &str) -> u32 {
    #[derive(Deserialize)]
    struct Stated {
        #[serde(default)]
        protocol: u32,
    }
    serde_json::from_str::<std::collections::HashMap<String, Stated>>(line.trim_end())
        .ok()
        .and_then(|m| m.into_values().next())
        .map_or(0, |s| s.protocol)
}

/// The sentence either side logs when the other speaks another version.
pub fn mismatch(ours: &str, theirs: &str, their_protocol: u32) -> String {
    format!(
        "{theirs} speaks worker protocol {their_protocol}, {ours} speaks {PROTOCOL}: \
         install peercam and peercam-media from the same build"
    )
}

/// One line as a message.
pub fn decode<T: DeserializeOwned>(line: &str) -> Result<T, serde_json::Error> {
    serde_json::from_str(line.trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;
    use peercam_signaling::ConversationKind;

    #[test]
    fn messages_survive_a_line() {
        let to = [
            ToWorker::Start(Box::new(WorkerSettings {
                protocol: PROTOCOL,
                conversation: "camera".into(),
                capture: Capture::Launch("videotestsrc ! x264enc".into()),
                validate: true,
                ice: IceSettings {
                    addresses: vec!["127.0.0.1".parse().unwrap()],
                    stun: None,
                },
                negotiation_timeout: Duration::from_secs(20),
                log_level: "info".into(),
                stream_profile: Some("42c01f".into()),
                dtls: Some(DtlsIdentity {
                    pem: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into(),
                    fingerprint: "AB:CD".into(),
                }),
                audio: AudioCapture::Launch {
                    launch: "audiotestsrc is-live=true".into(),
                    bitrate_kbps: 32,
                },
                talkback: Talkback::Select {
                    talkback: Default::default(),
                    pipelines_dir: Some("/p".into()),
                },
            })),
            ToWorker::Signal {
                member: "camera".into(),
                msg: Outgoing::AnswerRequest {
                    from: "a\nb".into(),
                    sdp: "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n".into(),
                },
            },
            ToWorker::Snapshot {
                id: 3,
                spec: SnapshotSpec {
                    size: Some((1280, 720)),
                    quality: 85,
                },
            },
            ToWorker::Stop,
        ];
        for msg in to {
            let line = encode(&msg);
            assert_eq!(line.matches('\n').count(), 1, "{line}");
            assert_eq!(decode::<ToWorker>(&line).unwrap(), msg);
        }
        let from = [
            FromWorker::Send {
                member: "camera-1".into(),
                msg: Incoming::Create {
                    conversation: "x".into(),
                    kind: ConversationKind::Mesh,
                },
            },
            FromWorker::Stream {
                profile_level_id: "42c01f".into(),
            },
            FromWorker::Failed {
                selecting: true,
                error: "no encoder".into(),
            },
            FromWorker::Stats {
                stats: CameraSnapshot {
                    peers: 2,
                    branches: 2,
                    connected: 1,
                    frames: 90,
                    capturing: true,
                    ..Default::default()
                },
                handled: 7,
            },
            FromWorker::Snapshot {
                id: 3,
                result: Ok(Jpeg(vec![0xff, 0xd8, 0xff, 0x00, b'\n', 0xff, 0xd9])),
            },
            FromWorker::Snapshot {
                id: 4,
                result: Err("the camera delivered no picture".into()),
            },
        ];
        for msg in from {
            assert_eq!(decode::<FromWorker>(&encode(&msg)).unwrap(), msg);
        }
    }

    #[test]
    fn the_protocol_is_read_before_the_rest() {
        let start = ToWorker::Start(Box::new(WorkerSettings {
            protocol: PROTOCOL,
            conversation: "camera".into(),
            capture: Capture::Launch("videotestsrc ! x264enc".into()),
            validate: false,
            ice: IceSettings::default(),
            negotiation_timeout: Duration::from_secs(20),
            log_level: "info".into(),
            stream_profile: None,
            dtls: None,
            audio: AudioCapture::None,
            talkback: Talkback::None,
        }));
        assert_eq!(protocol_of(&encode(&start)), PROTOCOL);
        let ready = FromWorker::Ready {
            protocol: PROTOCOL,
            launch: "x".into(),
            chosen: None,
        };
        assert_eq!(protocol_of(&encode(&ready)), PROTOCOL);
        // A later version's Start, with fields this one does not know and without some it
        // needs, still tells its version.
        assert_eq!(protocol_of(r#"{"Start":{"protocol":7,"future":[1,2]}}"#), 7);
        // An earlier build that sent no version, or not JSON at all.
        assert_eq!(protocol_of(r#"{"Start":{"conversation":"camera"}}"#), 0);
        assert_eq!(protocol_of("garbage"), 0);
        assert!(mismatch("peercam", "this media program", 7).contains("protocol 7"));
    }

    #[test]
    fn settings_without_a_dtls_certificate_still_read() {
        let start = WorkerSettings {
            protocol: PROTOCOL,
            conversation: "camera".into(),
            capture: Capture::Launch("x".into()),
            validate: false,
            ice: IceSettings::default(),
            negotiation_timeout: Duration::from_secs(20),
            log_level: "info".into(),
            stream_profile: None,
            dtls: None,
            audio: AudioCapture::None,
            talkback: Talkback::None,
        };
        let mut json: serde_json::Value = serde_json::to_value(&start).unwrap();
        // As a device of this protocol without a certificate to give (or an earlier one) sends it.
        json.as_object_mut().unwrap().remove("dtls");
        assert_eq!(
            serde_json::from_value::<WorkerSettings>(json).unwrap(),
            start
        );
    }

    #[test]
    fn a_picture_travels_as_base64() {
        let answer = FromWorker::Snapshot {
            id: 9,
            result: Ok(Jpeg(vec![0xff, 0xd8, 0xff, 0xe0])),
        };
        assert_eq!(
            encode(&answer),
            "{\"Snapshot\":{\"id\":9,\"result\":{\"Ok\":\"/9j/4A==\"}}}\n"
        );
        let bad = r#"{"Snapshot":{"id":9,"result":{"Ok":"not base64!"}}}"#;
        assert!(decode::<FromWorker>(bad).is_err());
    }

    #[test]
    fn the_largest_picture_fits_in_a_line() {
        let answer = FromWorker::Snapshot {
            id: u64::MAX,
            result: Ok(Jpeg(vec![0xa5; MAX_JPEG])),
        };
        let line = encode(&answer);
        assert!(line.len() <= MAX_LINE, "{} > {MAX_LINE}", line.len());
        assert_eq!(decode::<FromWorker>(&line).unwrap(), answer);
    }

    #[test]
    fn a_bad_line_is_an_error() {
        assert!(decode::<FromWorker>("{\"Release\":{}}").is_err());
        assert!(decode::<FromWorker>("not json").is_err());
    }
}
