//! The TOML configuration: every setting the service has, its default, and validation.
//! Unknown keys are refused; errors name the file, the line and the key.
//!
//! Each section is declared through [`section!`], which keeps the field doc comments as data
//! ([`Section::KEYS`]): `peercam config --default` prints the file from those comments and
//! from `Config::default()`, so the documented file cannot drift from the code.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use peercam_signaling::{Limits, Settings};

use crate::protocol::SnapshotSpec;

/// Where the service looks when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/peercam/peercam.toml";

/// One key of a section: its name and doc comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyDoc {
    /// The key as written in the file.
    pub name: &'static str,
    /// Its doc comment, one line per `///` line (each with its leading space).
    pub doc: &'static str,
}

/// A `[section]` of the file whose keys carry their documentation.
pub trait Section {
    /// Every key, in declaration order.
    const KEYS: &'static [KeyDoc];
}

/// Declares a section struct: serde with defaults and unknown keys refused, and its field doc
/// comments kept as [`Section::KEYS`]. Fields must each carry a doc comment and nothing else.
macro_rules! section {
    (
        $(#[doc = $sdoc:literal])*
        pub struct $name:ident {
            $( $(#[doc = $doc:literal])+ pub $field:ident: $ty:ty, )+
        }
    ) => {
        $(#[doc = $sdoc])*
        #[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
        #[serde(default, deny_unknown_fields)]
        pub struct $name {
            $( $(#[doc = $doc])+ pub $field: $ty, )+
        }

        impl Section for $name {
            const KEYS: &'static [KeyDoc] = &[
                $( KeyDoc { name: stringify!($field), doc: concat!($($doc, "\n"),+) }, )+
            ];
        }
    };
}

mod publish;
pub use publish::{check_publish_token, PublishConfig, WhipUrl};

/// The whole configuration.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// HTTP and signaling.
    pub server: ServerConfig,
    /// https and wss.
    pub tls: TlsConfig,
    /// Transport limits.
    pub limits: LimitsConfig,
    /// The camera peer.
    pub camera: CameraConfig,
    /// LAN discovery.
    pub discovery: DiscoveryConfig,
    /// Logging.
    pub log: LogConfig,
    /// Who may watch.
    pub auth: AuthConfig,
    /// The still picture at `/snapshot.jpg`.
    pub snapshot: SnapshotConfig,
    /// Publishing to a media server over WHIP.
    pub publish: PublishConfig,
    /// The camera's microphone.
    pub audio: AudioConfig,
    /// Talking from the page to the device's speaker.
    pub talkback: TalkbackConfig,
}

/// The sections in file order: name, the comment above it, its keys.
const SECTIONS: &[(&str, &str, &[KeyDoc])] = &[
    (
        "server",
        "HTTP page and WebSocket signaling.",
        ServerConfig::KEYS,
    ),
    (
        "tls",
        "https and wss on the same port as http (pages get camera and microphone on https only).",
        TlsConfig::KEYS,
    ),
    (
        "limits",
        "Limits of the signaling transport.",
        LimitsConfig::KEYS,
    ),
    (
        "camera",
        "The camera peer: capture, encoding, ICE.",
        CameraConfig::KEYS,
    ),
    (
        "discovery",
        "mDNS / DNS-SD: how browsers and `peercam discover` find the camera on the LAN.",
        DiscoveryConfig::KEYS,
    ),
    (
        "log",
        "Logging (to the journal under systemd, else to stderr).",
        LogConfig::KEYS,
    ),
    (
        "auth",
        "Who may watch: the page, the API and the WebSocket need the device's access token.",
        AuthConfig::KEYS,
    ),
    (
        "snapshot",
        "The camera's current picture as a JPEG at /snapshot.jpg (Home Assistant's still image).",
        SnapshotConfig::KEYS,
    ),
    (
        "publish",
        "Publishing to a media server over WHIP (RFC 9725): the server fans the one stream out.",
        PublishConfig::KEYS,
    ),
    (
        "audio",
        "The camera's microphone, sent to every viewer as one shared Opus encode.",
        AudioConfig::KEYS,
    ),
    (
        "talkback",
        "Push-to-talk from the page (https) to the device's speaker, one person at a time.",
        TalkbackConfig::KEYS,
    ),
];

/// Example values for keys that are unset by default, shown commented out.
const EXAMPLES: &[(&str, &str, &str)] = &[
    ("server", "state_dir", "\"/var/lib/peercam\""),
    ("tls", "cert", "\"/etc/peercam/cert.pem\""),
    ("auth", "token", "\"<32 or more of A-Z a-z 0-9 - _ .>\""),
    ("tls", "key", "\"/etc/peercam/key.pem\""),
    ("camera", "stun", "\"stun://stun.example.net:3478\""),
    (
        "publish",
        "url",
        "\"http://mediaserver.lan:8889/porch/whip\"",
    ),
    ("publish", "token", "\"<the endpoint's Bearer token>\""),
    (
        "camera",
        "pipelines_dir",
        "\"/usr/share/peercam/pipelines\"",
    ),
    ("audio", "device", "\"hw:1\""),
    ("talkback", "device", "\"plughw:CARD=Device,DEV=0\""),
    ("snapshot", "width", "1280"),
    ("snapshot", "height", "720"),
];

section! {
/// `[server]`
pub struct ServerConfig {
    /// Address and port for HTTP and the WebSocket.
    pub listen: SocketAddr,
    /// Device name shown on the page and advertised on the LAN.
    pub name: String,
    /// Browser origins, besides the page's own, allowed to use the WebSocket.
    pub allowed_origins: Vec<String>,
    /// Refuse `join` of a conversation that does not exist instead of creating it.
    pub join_only: bool,
    /// Directory for what the device keeps between starts: the generated TLS certificate and
    /// the access token (unset: $STATE_DIRECTORY, which systemd sets to /var/lib/peercam,
    /// else $XDG_STATE_HOME/peercam, else ~/.local/state/peercam).
    pub state_dir: Option<PathBuf>,
}
}

section! {
/// `[tls]`
pub struct TlsConfig {
    /// Answer https and wss on `server.listen` besides plain http; without `cert` and `key` a
    /// self-signed certificate is made on the first start and kept in `server.state_dir`.
    pub enabled: bool,
    /// PEM certificate (chain, the device's own first) to use instead of the generated one;
    /// set `key` as well.
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert` (PKCS#8, SEC1 or PKCS#1, unencrypted).
    pub key: Option<PathBuf>,
}
}

section! {
/// `[limits]`
pub struct LimitsConfig {
    /// Largest accepted message, bytes.
    pub max_message_bytes: usize,
    /// Messages queued per member before a slow one is dropped.
    pub send_queue: usize,
    /// Sustained messages per second per connection.
    pub rate_per_sec: f64,
    /// Burst of messages per connection.
    pub rate_burst: u32,
    /// Open WebSocket connections at most.
    pub max_connections: usize,
    /// Seconds of silence before a peer is taken for dead (≤ 27 to notice within 30 s).
    pub idle_timeout_secs: u64,
    /// Candidates held per pair before its answer.
    pub max_held_candidates: usize,
    /// Refused (rate-limited) messages in a row before a flooding connection is closed.
    pub max_strikes: u32,
    /// Seconds a single write to a member may stall before the connection is dropped.
    pub write_timeout_secs: u64,
}
}

section! {
/// `[camera]`
pub struct CameraConfig {
    /// Run the camera peer; `false` serves signaling (and the page) only.
    pub enabled: bool,
    /// The standing broadcast browsers join to watch; also the device's member id.
    pub conversation: String,
    /// Most viewers of the camera at once.
    pub max_viewers: usize,
    /// Source pipeline name from `pipelines/sources/` (`auto`: first camera, else `test`).
    pub source: String,
    /// Encoder pipeline name from `pipelines/encoders/` (`auto`: hardware if usable, else
    /// x264, else openh264).
    pub encoder: String,
    /// Capture width, pixels.
    pub width: u32,
    /// Capture height, pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Encoder bitrate, kbit/s: the most it sends; lower while most viewers lose packets.
    pub bitrate_kbps: u32,
    /// Addresses ICE offers host candidates on (empty: every LAN address).
    pub ice_addresses: Vec<IpAddr>,
    /// Optional STUN server, `stun://host:port`.
    pub stun: Option<String>,
    /// Directory holding `sources/` and `encoders/` (unset: $PEERCAM_PIPELINES, else
    /// ../share/peercam/pipelines beside the executable, else /usr/share/peercam/pipelines).
    pub pipelines_dir: Option<PathBuf>,
    /// Seconds a viewer may take to connect before its peer is released.
    pub negotiation_timeout_secs: u64,
    /// Seconds without an encoded frame, while someone watches, before the camera counts as
    /// wedged: the systemd watchdog pings stop and systemd restarts the service.
    pub stall_timeout_secs: u64,
}
}

section! {
/// `[discovery]`
pub struct DiscoveryConfig {
    /// Advertise the camera over mDNS (`_nextrtc._tcp` and `_http._tcp`) as `server.name`.
    pub enabled: bool,
    /// Addresses to publish (empty: the address in `server.listen` when it names one, else
    /// every non-loopback interface address, kept up to date as interfaces come and go; a
    /// loopback `server.listen` is not advertised unless addresses are given here).
    pub addresses: Vec<IpAddr>,
}
}

section! {
/// `[log]`
pub struct LogConfig {
    /// Log filter in RUST_LOG syntax (`info`, `debug`, `peercam=debug,warn`); the RUST_LOG
    /// environment variable, when set, takes precedence.
    pub level: String,
}
}

section! {
/// `[auth]`
pub struct AuthConfig {
    /// `token`: the page, the API and the WebSocket need the access token (made on the first
    /// start and kept in `server.state_dir`; `peercam token` prints the link to open);
    /// `none`: anyone who can reach the port may watch (a trusted LAN only).
    pub mode: AuthMode,
    /// A token of your own instead of the generated one: at least 32 characters, each a
    /// letter, a digit, `-`, `_` or `.`.
    pub token: Option<String>,
}
}

section! {
/// `[snapshot]`
pub struct SnapshotConfig {
    /// Width of the picture, pixels (unset: the stream's own size, `camera.width`); set
    /// `height` as well. A shape other than the stream's gets borders, never a squashed picture.
    pub width: Option<u32>,
    /// Height of the picture, pixels (unset: the stream's own size); set `width` as well.
    pub height: Option<u32>,
    /// JPEG quality, 1 (smallest file) to 100 (best picture).
    pub quality: u32,
}
}

section! {
/// `[audio]`
pub struct AudioConfig {
    /// Audio source name from `pipelines/audio/` (`alsa`: an ALSA capture device; `test`: a
    /// tone, no microphone needed), `auto` (the first ALSA capture card, else no sound) or
    /// `none` (video only).
    pub source: String,
    /// ALSA device the `alsa` source opens (`hw:1`, `plughw:CARD=Device`); unset: the first
    /// capture card.
    pub device: Option<String>,
    /// Opus bitrate, kbit/s.
    pub bitrate_kbps: u32,
}
}

impl Default for AudioConfig {
    fn default() -> Self {
        AudioConfig {
            source: "auto".into(),
            device: None,
            bitrate_kbps: 32,
        }
    }
}

section! {
/// `[talkback]`
pub struct TalkbackConfig {
    /// Viewers may talk through the device's speaker (push to talk on the page, which needs
    /// https for the browser's microphone; with access control, the token as for watching).
    pub enabled: bool,
    /// Speaker output name from `pipelines/speaker/` (`alsa`: an ALSA playback device),
    /// `auto` (the first ALSA playback device that is not HDMI, else no talkback) or `none`.
    pub output: String,
    /// ALSA device the `alsa` output opens (`hw:0`, `plughw:CARD=Device`); unset: the first
    /// playback card.
    pub device: Option<String>,
    /// Cancel the speaker's sound out of the microphone's (webrtcdsp), when both are on.
    pub echo_cancel: bool,
}
}

impl Default for TalkbackConfig {
    fn default() -> Self {
        TalkbackConfig {
            enabled: true,
            output: "auto".into(),
            device: None,
            echo_cancel: true,
        }
    }
}

/// Whether `name` is a description name (`auto`, `none` or a file of `pipelines/<kind>/`).
fn valid_description_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether `device` is an ALSA device name: it goes into a launch line, so nothing that could
/// end the element or add one.
fn valid_alsa_device(device: &str) -> bool {
    !device.is_empty()
        && device.len() <= 128
        && device
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b":,=_-.".contains(&b))
}

impl SnapshotConfig {
    /// The picture to ask the camera for.
    pub fn spec(&self) -> SnapshotSpec {
        SnapshotSpec {
            size: self.width.zip(self.height),
            quality: self.quality,
        }
    }
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        SnapshotConfig {
            width: None,
            height: None,
            quality: 85,
        }
    }
}

/// `auth.mode`.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// The access token is needed.
    #[default]
    Token,
    /// Open to anyone who can reach the port.
    None,
}

/// Shortest access token accepted: 32 characters of the allowed set carry at least 160 bits
/// when random.
pub const MIN_TOKEN_LEN: usize = 32;

/// Longest access token accepted.
pub const MAX_TOKEN_LEN: usize = 256;

/// Whether `token` can be an access token: [`MIN_TOKEN_LEN`] to [`MAX_TOKEN_LEN`] characters,
/// each a letter, a digit, `-`, `_` or `.` (what travels in a URL unescaped); why not otherwise.
pub fn check_token(token: &str) -> Result<(), String> {
    if token.len() < MIN_TOKEN_LEN {
        return Err(format!(
            "is {} characters long; it must have at least {MIN_TOKEN_LEN}",
            token.chars().count()
        ));
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(format!("must have at most {MAX_TOKEN_LEN} characters"));
    }
    if !token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err("may hold only letters, digits, `-`, `_` and `.`".into());
    }
    Ok(())
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            mode: AuthMode::Token,
            token: None,
        }
    }
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            enabled: true,
            addresses: Vec::new(),
        }
    }
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            enabled: true,
            cert: None,
            key: None,
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            name: "peercam".into(),
            allowed_origins: Vec::new(),
            join_only: false,
            state_dir: None,
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let l = Limits::default();
        LimitsConfig {
            max_message_bytes: l.max_message_bytes,
            send_queue: l.send_queue,
            rate_per_sec: l.rate_per_sec,
            rate_burst: l.rate_burst,
            max_connections: l.max_connections,
            idle_timeout_secs: l.idle_timeout.as_secs(),
            max_held_candidates: Settings::default().max_held_candidates,
            max_strikes: l.max_strikes,
            write_timeout_secs: l.write_timeout.as_secs(),
        }
    }
}

impl Default for CameraConfig {
    fn default() -> Self {
        CameraConfig {
            enabled: true,
            conversation: "camera".into(),
            max_viewers: 8,
            source: "auto".into(),
            encoder: "auto".into(),
            width: 1280,
            height: 720,
            fps: 30,
            bitrate_kbps: 2000,
            ice_addresses: Vec::new(),
            stun: None,
            pipelines_dir: None,
            negotiation_timeout_secs: 30,
            stall_timeout_secs: 10,
        }
    }
}

/// A configuration that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {error}")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The file is not valid TOML or has unknown keys or wrong types.
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    /// A value is out of range.
    #[error("{path}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        message: String,
    },
}

/// Settings given on the command line; each one set replaces the file's value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// `server.listen`.
    pub listen: Option<SocketAddr>,
    /// `server.name`.
    pub name: Option<String>,
    /// `camera.conversation`.
    pub conversation: Option<String>,
    /// `camera.source`.
    pub source: Option<String>,
    /// `camera.encoder`.
    pub encoder: Option<String>,
    /// `audio.source`.
    pub audio: Option<String>,
    /// `camera.ice_addresses` (empty: keep the file's).
    pub ice_addresses: Vec<IpAddr>,
    /// `camera.pipelines_dir`.
    pub pipelines_dir: Option<PathBuf>,
    /// `discovery.enabled = false`.
    pub no_discovery: bool,
    /// `tls.enabled = false`.
    pub no_tls: bool,
    /// `camera.enabled = false`.
    pub no_camera: bool,
}

impl Config {
    /// The configuration the service runs with: the file named by `--config` (which must
    /// exist), else [`DEFAULT_PATH`] when it exists, else the defaults; then the command-line
    /// `overrides`, validated again. Returns the file that was read, if any.
    pub fn resolve(
        explicit: Option<&Path>,
        overrides: &Overrides,
    ) -> Result<(Config, Option<PathBuf>), ConfigError> {
        let path = match explicit {
            Some(p) => Some(p.to_owned()),
            None => Some(PathBuf::from(DEFAULT_PATH)).filter(|p| p.exists()),
        };
        let config = match &path {
            Some(p) => Config::load(p)?,
            None => Config::default(),
        };
        let label = match &path {
            Some(p) => PathBuf::from(format!("{} with command-line flags", p.display())),
            None => PathBuf::from("command-line flags"),
        };
        let config = config.with_overrides(overrides);
        config.validate(&label)?;
        Ok((config, path))
    }

    /// This configuration with the command-line settings applied (not validated).
    pub fn with_overrides(mut self, o: &Overrides) -> Config {
        if let Some(listen) = o.listen {
            self.server.listen = listen;
        }
        if let Some(name) = &o.name {
            self.server.name = name.clone();
        }
        if let Some(conv) = &o.conversation {
            self.camera.conversation = conv.clone();
        }
        if let Some(source) = &o.source {
            self.camera.source = source.clone();
        }
        if let Some(encoder) = &o.encoder {
            self.camera.encoder = encoder.clone();
        }
        if let Some(audio) = &o.audio {
            self.audio.source = audio.clone();
        }
        if !o.ice_addresses.is_empty() {
            self.camera.ice_addresses = o.ice_addresses.clone();
        }
        if let Some(dir) = &o.pipelines_dir {
            self.camera.pipelines_dir = Some(dir.clone());
        }
        if o.no_discovery {
            self.discovery.enabled = false;
        }
        if o.no_tls {
            self.tls.enabled = false;
        }
        if o.no_camera {
            self.camera.enabled = false;
        }
        self
    }

    /// Reads and validates a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
            path: path.to_owned(),
            error,
        })?;
        Config::parse(&text, path)
    }

    /// Parses and validates TOML text; `path` is used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key, message: &str| {
            Err(ConfigError::Invalid {
                path: path.to_owned(),
                key,
                message: message.to_owned(),
            })
        };
        let l = &self.limits;
        if l.max_message_bytes < 1024 {
            return invalid("limits.max_message_bytes", "must be at least 1024");
        }
        if l.send_queue == 0 {
            return invalid("limits.send_queue", "must be at least 1");
        }
        if !(l.rate_per_sec > 0.0 && l.rate_per_sec.is_finite()) {
            return invalid("limits.rate_per_sec", "must be a positive number");
        }
        if l.rate_burst == 0 {
            return invalid("limits.rate_burst", "must be at least 1");
        }
        if l.max_connections == 0 {
            return invalid("limits.max_connections", "must be at least 1");
        }
        if !(3..=300).contains(&l.idle_timeout_secs) {
            return invalid("limits.idle_timeout_secs", "must be between 3 and 300");
        }
        if l.max_strikes == 0 {
            return invalid("limits.max_strikes", "must be at least 1");
        }
        if !(1..=300).contains(&l.write_timeout_secs) {
            return invalid("limits.write_timeout_secs", "must be between 1 and 300");
        }
        if self.camera.conversation.is_empty() {
            return invalid("camera.conversation", "must not be empty");
        }
        let c = &self.camera;
        if !(16..=3840).contains(&c.width) || !(16..=2160).contains(&c.height) {
            return invalid("camera.width", "width must be 16..3840 and height 16..2160");
        }
        if !(1..=120).contains(&c.fps) {
            return invalid("camera.fps", "must be between 1 and 120");
        }
        if !(100..=50_000).contains(&c.bitrate_kbps) {
            return invalid("camera.bitrate_kbps", "must be between 100 and 50000");
        }
        if c.max_viewers == 0 {
            return invalid("camera.max_viewers", "must be at least 1");
        }
        if let Some(stun) = &c.stun {
            if !stun.starts_with("stun://") {
                return invalid("camera.stun", "must look like stun://host:port");
            }
        }
        if self.server.name.trim().is_empty() {
            return invalid("server.name", "must not be empty");
        }
        // The name is a DNS-SD instance name, a single DNS label on the wire.
        if self.server.name.len() > 63 || self.server.name.chars().any(char::is_control) {
            return invalid(
                "server.name",
                "must be at most 63 bytes, without control characters",
            );
        }
        if !(5..=600).contains(&c.negotiation_timeout_secs) {
            return invalid(
                "camera.negotiation_timeout_secs",
                "must be between 5 and 600",
            );
        }
        if !(1..=600).contains(&c.stall_timeout_secs) {
            return invalid("camera.stall_timeout_secs", "must be between 1 and 600");
        }
        match (&self.tls.cert, &self.tls.key) {
            (Some(_), None) => {
                return invalid(
                    "tls.key",
                    "must be set as well as tls.cert (its private key)",
                )
            }
            (None, Some(_)) => {
                return invalid(
                    "tls.cert",
                    "must be set as well as tls.key (its certificate)",
                )
            }
            _ => {}
        }
        if let Some(token) = &self.auth.token {
            if let Err(e) = check_token(token) {
                return invalid("auth.token", &e);
            }
            if self.auth.mode == AuthMode::None {
                return invalid("auth.token", "is set, but auth.mode is \"none\"");
            }
        }
        let shot = &self.snapshot;
        match (shot.width, shot.height) {
            (Some(_), None) => {
                return invalid("snapshot.height", "must be set as well as snapshot.width")
            }
            (None, Some(_)) => {
                return invalid("snapshot.width", "must be set as well as snapshot.height")
            }
            (Some(w), Some(h)) if !(16..=3840).contains(&w) || !(16..=2160).contains(&h) => {
                return invalid(
                    "snapshot.width",
                    "width must be 16..3840 and height 16..2160",
                );
            }
            _ => {}
        }
        if !(1..=100).contains(&shot.quality) {
            return invalid("snapshot.quality", "must be between 1 and 100");
        }
        if let Err((key, message)) = self.publish.check() {
            return invalid(key, &message);
        }
        let audio = &self.audio;
        let sound = [
            (
                "audio.source",
                &audio.source,
                "audio",
                "audio.device",
                &audio.device,
                "hw:1",
            ),
            (
                "talkback.output",
                &self.talkback.output,
                "speaker",
                "talkback.device",
                &self.talkback.device,
                "hw:0",
            ),
        ];
        for (name_key, name, folder, device_key, device, example) in sound {
            if !valid_description_name(name) {
                return invalid(
                    name_key,
                    &format!(
                        "must be auto, none or a name from pipelines/{folder}/ (letters, \
                         digits, - and _)"
                    ),
                );
            }
            if device.as_deref().is_some_and(|d| !valid_alsa_device(d)) {
                return invalid(
                    device_key,
                    &format!(
                        "must be an ALSA device name such as {example} or \
                         plughw:CARD=Device,DEV=0 (letters, digits and : , = _ - .)"
                    ),
                );
            }
        }
        if !(6..=510).contains(&audio.bitrate_kbps) {
            return invalid("audio.bitrate_kbps", "must be between 6 and 510");
        }
        if let Err(e) = env_filter::Builder::new().try_parse(&self.log.level) {
            return invalid("log.level", &format!("not a log filter: {e}"));
        }
        Ok(())
    }

    /// The file as `peercam config --default` prints it: every key with its doc comment and
    /// default value.
    pub fn default_file() -> String {
        Config::default().to_commented_toml()
    }

    /// This configuration as a commented TOML file: every key with its doc comment; keys
    /// that are unset are shown commented out with an example value.
    pub fn to_commented_toml(&self) -> String {
        let mut out = String::from(
            "# peercam configuration (read from /etc/peercam/peercam.toml by default).\n\
             #\n\
             # Every key is listed with its value; a key left out takes its default, so the\n\
             # file may keep only the lines that change. Unknown keys are refused, and errors\n\
             # name the file, line and key. Command-line flags override the file.\n",
        );
        // Serializing plain structs of strings, numbers, addresses and lists cannot fail; an
        // empty table would only leave every key commented out.
        let values = toml::Value::try_from(self)
            .ok()
            .and_then(|v| v.as_table().cloned())
            .unwrap_or_default();
        // Writing to a String cannot fail; the results are ignored for that reason only.
        for (section, doc, keys) in SECTIONS {
            let table = values.get(*section).and_then(toml::Value::as_table);
            let _ = write!(out, "\n# {doc}\n[{section}]\n");
            for key in *keys {
                for line in key.doc.lines() {
                    let _ = writeln!(out, "#{line}");
                }
                match table.and_then(|t| t.get(key.name)) {
                    Some(value) => {
                        let _ = writeln!(out, "{} = {value}", key.name);
                    }
                    None => {
                        let example = EXAMPLES
                            .iter()
                            .find(|(s, k, _)| s == section && *k == key.name)
                            .map_or("\"\"", |(_, _, e)| e);
                        let _ =
                            writeln!(out, "# Not set. For example:\n# {} = {example}", key.name);
                    }
                }
            }
        }
        out
    }

    /// Transport limits for the signaling server.
    pub fn transport_limits(&self) -> Limits {
        let l = &self.limits;
        let idle = Duration::from_secs(l.idle_timeout_secs);
        Limits {
            max_message_bytes: l.max_message_bytes,
            send_queue: l.send_queue,
            rate_per_sec: l.rate_per_sec,
            rate_burst: l.rate_burst,
            max_connections: l.max_connections,
            idle_timeout: idle,
            keepalive_after: idle / 3,
            max_strikes: l.max_strikes,
            write_timeout: Duration::from_secs(l.write_timeout_secs),
            ..Limits::default()
        }
    }

    /// Conversation rules for the signaling core.
    pub fn signaling_settings(&self) -> Settings {
        Settings {
            join_creates: !self.server.join_only,
            max_viewers: None,
            max_held_candidates: self.limits.max_held_candidates,
            device: Some(self.camera.conversation.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/peercam/peercam.toml"))
    }

    #[test]
    fn empty_file_is_the_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
    }

    #[test]
    fn values_override_defaults() {
        let c = parse(
            "[server]\nlisten = \"127.0.0.1:9000\"\nallowed_origins = [\"https://a.example\"]\n\
             [limits]\nmax_connections = 5\n[camera]\nconversation = \"porch\"\n",
        )
        .unwrap();
        assert_eq!(c.server.listen.port(), 9000);
        assert_eq!(c.limits.max_connections, 5);
        assert_eq!(c.camera.conversation, "porch");
        assert_eq!(c.limits.send_queue, LimitsConfig::default().send_queue);
    }

    #[test]
    fn errors_name_file_line_and_key() {
        let e = parse("[server]\nname = \"x\"\nlisten_port = 80\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("/etc/peercam/peercam.toml"), "{e}");
        assert!(e.contains("line 3"), "{e}");
        assert!(e.contains("listen_port"), "{e}");
        let e = parse("[server]\nlisten = \"nowhere\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && e.contains("listen"), "{e}");
        let e = parse("[limits]\nsend_queue = 0\n").unwrap_err().to_string();
        assert!(e.contains("limits.send_queue"), "{e}");
        let e = parse("[nope]\n").unwrap_err().to_string();
        assert!(e.contains("nope"), "{e}");
        let e = parse("[server\n").unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
    }

    /// Asserts that `text` is refused with a message naming the file and each of `needles`.
    fn refused(text: &str, needles: &[&str]) {
        let e = match parse(text) {
            Ok(c) => panic!("accepted {text:?} as {c:?}"),
            Err(e) => e.to_string(),
        };
        assert!(e.contains("/etc/peercam/peercam.toml"), "{e}");
        for n in needles {
            assert!(e.contains(n), "{e:?} should mention {n:?}");
        }
    }

    #[test]
    fn every_kind_of_bad_file_is_refused_with_its_place() {
        // TOML syntax.
        refused("[camera]\nfps = = 3\n", &["line 2"]);
        refused("[camera]\nname = \"unterminated\n", &["line 2"]);
        // Unknown section and unknown key.
        refused("[server]\n\n[cammera]\nfps = 3\n", &["line 3", "cammera"]);
        refused(
            "[discovery]\nenabled = true\nbroadcast = 1\n",
            &["line 3", "broadcast"],
        );
        refused("listen = \"0.0.0.0:80\"\n", &["line 1", "listen"]);
        // Wrong types.
        refused("[camera]\nfps = \"thirty\"\n", &["line 2", "fps"]);
        refused("[discovery]\nenabled = \"yes\"\n", &["line 2", "enabled"]);
        refused(
            "[camera]\nice_addresses = [\"not-an-ip\"]\n",
            &["line 2", "ice_addresses"],
        );
        refused(
            "[limits]\nmax_connections = -1\n",
            &["line 2", "max_connections"],
        );
        refused("server = 3\n", &["line 1", "server"]);
        // Values out of range.
        refused("[camera]\nfps = 0\n", &["camera.fps"]);
        refused("[camera]\nbitrate_kbps = 99\n", &["camera.bitrate_kbps"]);
        refused(
            "[camera]\nstall_timeout_secs = 0\n",
            &["camera.stall_timeout_secs"],
        );
        refused("[limits]\nmax_strikes = 0\n", &["limits.max_strikes"]);
        refused(
            "[limits]\nwrite_timeout_secs = 0\n",
            &["limits.write_timeout_secs"],
        );
        refused("[camera]\nenabled = 1\n", &["line 2", "enabled"]);
        refused(
            "[camera]\nnegotiation_timeout_secs = 1\n",
            &["camera.negotiation_timeout_secs"],
        );
        refused(
            "[limits]\nidle_timeout_secs = 1\n",
            &["limits.idle_timeout_secs"],
        );
        refused("[server]\nname = \"\"\n", &["server.name"]);
        refused(
            &format!("[server]\nname = \"{}\"\n", "x".repeat(64)),
            &["server.name"],
        );
        refused("[camera]\nstun = \"turn://x\"\n", &["camera.stun"]);
        refused("[log]\nlevel = \"peercam=loud\"\n", &["log.level"]);
        refused("[tls]\ncert = \"/c.pem\"\n", &["tls.key"]);
        refused("[tls]\nkey = \"/k.pem\"\n", &["tls.cert"]);
        refused("[tls]\nenabled = \"yes\"\n", &["line 2", "enabled"]);
        refused(
            "[tls]\ncertificate = \"/c.pem\"\n",
            &["line 2", "certificate"],
        );
        refused("[auth]\nmode = \"open\"\n", &["line 2", "mode"]);
        refused(
            "[snapshot]\nwidth = 640\n",
            &["snapshot.height", "snapshot.width"],
        );
        refused(
            "[snapshot]\nheight = 480\n",
            &["snapshot.width", "snapshot.height"],
        );
        refused(
            "[snapshot]\nwidth = 8000\nheight = 480\n",
            &["snapshot.width", "3840"],
        );
        refused("[snapshot]\nwidth = 640\nheight = 4\n", &["snapshot.width"]);
        refused(
            "[snapshot]\nquality = 0\n",
            &["snapshot.quality", "1 and 100"],
        );
        refused("[snapshot]\nquality = 101\n", &["snapshot.quality"]);
        refused("[snapshot]\nquality = \"high\"\n", &["line 2", "quality"]);
        refused("[snapshot]\nsize = \"640x480\"\n", &["line 2", "size"]);
        refused(
            "[auth]\ntoken = \"short\"\n",
            &["auth.token", "at least 32"],
        );
        refused(
            &format!("[auth]\ntoken = \"{}+/\"\n", "a".repeat(40)),
            &["auth.token", "letters, digits"],
        );
        refused(
            &format!("[auth]\nmode = \"none\"\ntoken = \"{}\"\n", "a".repeat(40)),
            &["auth.token", "none"],
        );
    }

    #[test]
    fn publishing_is_off_by_default_and_its_section_is_checked() {
        assert!(!Config::default().publish.enabled);
        let c = parse(
            "[publish]\nenabled = true\nurl = \"http://10.1.2.3:7080/whip/endpoint/cam\"\n\
             token = \"s3cret\"\n",
        )
        .unwrap();
        let endpoint = c.publish.endpoint().unwrap();
        assert_eq!((endpoint.host.as_str(), endpoint.port), ("10.1.2.3", 7080));
        refused(
            "[publish]\nenabled = true\n",
            &["publish.url", "must be set"],
        );
        refused(
            "[publish]\nurl = \"rtmp://x/live\"\n",
            &["publish.url", "http://"],
        );
        refused(
            "[publish]\nurl = \"http://x/whip\"\ntoken = \"a b\"\n",
            &["publish.token"],
        );
        refused(
            "[publish]\nendpoint = \"http://x\"\n",
            &["line 2", "endpoint"],
        );
        // The printed file shows both keys as examples, and they are valid uncommented.
        let text = Config::default_file()
            .replace("\n# url = ", "\nurl = ")
            .replace("\n# token = \"<the", "\ntoken = \"the");
        let text = text.replace("the endpoint's Bearer token>", "stream-key");
        let c = parse(&text).unwrap();
        assert_eq!(c.publish.token.as_deref(), Some("stream-key"));
    }

    #[test]
    fn auth_is_a_token_by_default_and_can_be_opened_or_given() {
        assert_eq!(Config::default().auth.mode, AuthMode::Token);
        assert_eq!(Config::default().auth.token, None);
        let c = parse("[auth]\nmode = \"none\"\n").unwrap();
        assert_eq!(c.auth.mode, AuthMode::None);
        let token = "0123456789abcdefghijklmnopqrstuv-_.";
        let c = parse(&format!("[auth]\ntoken = \"{token}\"\n")).unwrap();
        assert_eq!(c.auth.token.as_deref(), Some(token));
        assert!(check_token(&"x".repeat(MAX_TOKEN_LEN + 1)).is_err());
    }

    #[test]
    fn the_snapshot_is_the_streams_size_at_quality_85_unless_set() {
        let spec = Config::default().snapshot.spec();
        assert_eq!((spec.size, spec.quality), (None, 85));
        let c = parse("[snapshot]\nwidth = 640\nheight = 360\nquality = 60\n").unwrap();
        assert_eq!(
            c.snapshot.spec(),
            SnapshotSpec {
                size: Some((640, 360)),
                quality: 60
            }
        );
    }

    #[test]
    fn a_missing_or_unreadable_file_is_named() {
        let dir = std::env::temp_dir().join(format!("peercam-config-{}", std::process::id()));
        let missing = dir.join("missing.toml");
        let e = Config::load(&missing).unwrap_err().to_string();
        assert!(e.contains(&missing.display().to_string()), "{e}");
        // A directory cannot be read as a file.
        std::fs::create_dir_all(&dir).unwrap();
        let e = Config::load(&dir).unwrap_err().to_string();
        assert!(e.contains(&dir.display().to_string()), "{e}");
        let e = Config::resolve(Some(&missing), &Overrides::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.toml"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_default_file_parses_to_the_defaults() {
        let text = Config::default_file();
        assert_eq!(parse(&text).unwrap(), Config::default(), "{text}");
    }

    #[test]
    fn the_default_file_documents_every_key_with_its_value() {
        let text = Config::default_file();
        // Set every optional key so that serialization lists all of them.
        let mut full = Config::default();
        full.camera.stun = Some("stun://example.net:3478".into());
        full.camera.pipelines_dir = Some("/p".into());
        full.server.state_dir = Some("/s".into());
        full.tls.cert = Some("/c".into());
        full.tls.key = Some("/k".into());
        full.auth.token = Some("t".repeat(MIN_TOKEN_LEN));
        full.snapshot.width = Some(640);
        full.snapshot.height = Some(480);
        full.publish.url = Some("http://m/whip".into());
        full.publish.token = Some("k".into());
        full.audio.device = Some("hw:1".into());
        full.talkback.device = Some("hw:0".into());
        let value = toml::Value::try_from(&full).unwrap();
        let tables = value.as_table().unwrap();
        let names: Vec<&str> = SECTIONS.iter().map(|(n, _, _)| *n).collect();
        let serialized: Vec<&str> = tables.keys().map(String::as_str).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(
            sorted, serialized,
            "SECTIONS must list every section of Config"
        );
        for (section, _, keys) in SECTIONS {
            let table = tables[*section].as_table().unwrap();
            let documented: Vec<&str> = keys.iter().map(|k| k.name).collect();
            let mut listed: Vec<&str> = table.keys().map(String::as_str).collect();
            listed.sort_unstable();
            let mut doc_sorted = documented.clone();
            doc_sorted.sort_unstable();
            assert_eq!(doc_sorted, listed, "[{section}]");
            let body = text
                .split(&format!("[{section}]\n"))
                .nth(1)
                .unwrap_or_else(|| panic!("[{section}] missing from\n{text}"));
            for key in *keys {
                assert!(
                    !key.doc.trim().is_empty(),
                    "{section}.{} has no doc",
                    key.name
                );
                let set = format!("\n{} = ", key.name);
                let example = format!("\n# {} = ", key.name);
                assert!(
                    body.starts_with(&set[1..]) || body.contains(&set) || body.contains(&example),
                    "{section}.{} missing from\n{text}",
                    key.name
                );
                let first_doc_line = key.doc.lines().next().unwrap();
                assert!(
                    body.contains(&format!("#{first_doc_line}\n")),
                    "{section}.{}",
                    key.name
                );
            }
        }
        assert!(text.contains("\nlisten = \"0.0.0.0:8080\"\n"), "{text}");
        assert!(text.contains("\n[discovery]\n"), "{text}");
        assert!(text.contains("\nenabled = true\n"), "{text}");
    }

    #[test]
    fn uncommented_examples_are_valid() {
        let text = Config::default_file().replace("\n# stun = ", "\nstun = ");
        let text = text.replace("\n# pipelines_dir = ", "\npipelines_dir = ");
        let text = text.replace("\n# state_dir = ", "\nstate_dir = ");
        let text = text.replace("\n# cert = ", "\ncert = ");
        let text = text.replace("\n# key = ", "\nkey = ");
        let text = text.replace("\n# width = ", "\nwidth = ");
        let text = text.replace("\n# height = ", "\nheight = ");
        let c = parse(&text).unwrap();
        assert_eq!(c.snapshot.spec().size, Some((1280, 720)));
        assert!(c.camera.stun.is_some() && c.camera.pipelines_dir.is_some());
        assert!(c.server.state_dir.is_some());
        assert!(c.tls.cert.is_some() && c.tls.key.is_some());
    }

    #[test]
    fn a_changed_config_prints_and_parses_back() {
        let mut c = Config::default();
        c.server.name = "Porch \"cam\" #1".into();
        c.server.allowed_origins = vec!["https://a.example".into()];
        c.camera.ice_addresses = vec!["192.0.2.7".parse().unwrap(), "::1".parse().unwrap()];
        c.camera.stun = Some("stun://stun.example.net:3478".into());
        c.limits.rate_per_sec = 12.5;
        c.discovery.enabled = false;
        c.log.level = "peercam=debug,warn".into();
        c.server.state_dir = Some("/srv/cam state".into());
        c.tls.enabled = false;
        c.tls.cert = Some("/etc/ssl/cam.pem".into());
        c.tls.key = Some("/etc/ssl/private/cam.key".into());
        assert_eq!(parse(&c.to_commented_toml()).unwrap(), c);
    }

    #[test]
    fn audio_values_are_checked() {
        let c = parse("[audio]\nsource = \"alsa\"\ndevice = \"plughw:CARD=Mic,DEV=0\"\n").unwrap();
        assert_eq!(c.audio.source, "alsa");
        assert_eq!(c.audio.bitrate_kbps, 32);
        for (text, key) in [
            ("[audio]\nsource = \"alsa ! fakesink\"\n", "audio.source"),
            ("[audio]\ndevice = \"hw:1 ! fakesink\"\n", "audio.device"),
            ("[audio]\ndevice = \"\"\n", "audio.device"),
            ("[audio]\nbitrate_kbps = 2\n", "audio.bitrate_kbps"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
        assert!(parse("[audio]\nmicrophone = 1\n").is_err());
    }

    #[test]
    fn talkback_values_are_checked() {
        let c = parse("[talkback]\noutput = \"alsa\"\ndevice = \"plughw:CARD=Spk\"\n").unwrap();
        assert!(c.talkback.enabled && c.talkback.echo_cancel);
        assert_eq!(c.talkback.output, "alsa");
        assert_eq!(Config::default().talkback.output, "auto");
        for (text, key) in [
            (
                "[talkback]\noutput = \"alsa ! fakesink\"\n",
                "talkback.output",
            ),
            (
                "[talkback]\ndevice = \"hw:0 ! filesink\"\n",
                "talkback.device",
            ),
            ("[talkback]\ndevice = \"\"\n", "talkback.device"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
        assert!(parse("[talkback]\nenabled = \"yes\"\n").is_err());
    }

    #[test]
    fn command_line_flags_override_the_file() {
        let dir = std::env::temp_dir().join(format!("peercam-flags-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("peercam.toml");
        std::fs::write(
            &file,
            "[server]\nlisten = \"127.0.0.1:9000\"\nname = \"file\"\n\
             [camera]\nsource = \"libcamera\"\nfps = 15\nice_addresses = [\"192.0.2.1\"]\n\
             [discovery]\nenabled = true\n",
        )
        .unwrap();
        let (c, read) = Config::resolve(Some(&file), &Overrides::default()).unwrap();
        assert_eq!(read.as_deref(), Some(file.as_path()));
        assert_eq!(c.server.listen.port(), 9000);
        assert_eq!(c.camera.source, "libcamera");

        let flags = Overrides {
            listen: Some("127.0.0.1:9100".parse().unwrap()),
            name: Some("flag".into()),
            conversation: Some("porch".into()),
            source: Some("test".into()),
            encoder: Some("x264".into()),
            audio: Some("test".into()),
            ice_addresses: vec!["127.0.0.1".parse().unwrap()],
            pipelines_dir: Some("/tmp/p".into()),
            no_discovery: true,
            no_camera: true,
            no_tls: true,
        };
        let (c, _) = Config::resolve(Some(&file), &flags).unwrap();
        assert_eq!(c.server.listen.port(), 9100);
        assert_eq!(c.server.name, "flag");
        assert_eq!(c.camera.conversation, "porch");
        assert_eq!(c.camera.source, "test");
        assert_eq!(c.camera.encoder, "x264");
        assert_eq!(c.audio.source, "test");
        assert_eq!(c.camera.ice_addresses, flags.ice_addresses);
        assert_eq!(c.camera.pipelines_dir.as_deref(), Some(Path::new("/tmp/p")));
        assert!(!c.discovery.enabled);
        assert!(!c.camera.enabled);
        assert!(!c.tls.enabled);
        // What no flag names keeps the file's value.
        assert_eq!(c.camera.fps, 15);

        // A flag's value is validated like the file's.
        let bad = Overrides {
            conversation: Some(String::new()),
            ..Overrides::default()
        };
        let e = Config::resolve(Some(&file), &bad).unwrap_err().to_string();
        assert!(
            e.contains("camera.conversation") && e.contains("command-line"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
