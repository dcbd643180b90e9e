//! The TOML configuration: every setting the service has, its default, and validation.
//! Unknown keys are refused; errors name the file, the line and the key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::signaling::{Limits, Settings};

/// Where the service looks when `--config` is not given.
pub const DEFAULT_PATH: &str = "/etc/peercam/peercam.toml";

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// HTTP and signaling.
    pub server: ServerConfig,
    /// Transport limits.
    pub limits: LimitsConfig,
    /// The camera peer.
    pub camera: CameraConfig,
}

/// `[server]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address and port for HTTP and the WebSocket.
    pub listen: SocketAddr,
    /// Device name shown on the page and advertised on the LAN.
    pub name: String,
    /// Browser origins, besides the page's own, allowed to use the WebSocket.
    pub allowed_origins: Vec<String>,
    /// Refuse `join` of a conversation that does not exist instead of creating it.
    pub join_only: bool,
}

/// `[limits]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
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
}

/// `[camera]`
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CameraConfig {
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
    /// Encoder bitrate, kbit/s.
    pub bitrate_kbps: u32,
    /// Addresses ICE offers host candidates on (empty: every LAN address).
    pub ice_addresses: Vec<std::net::IpAddr>,
    /// Optional STUN server, `stun://host:port`.
    pub stun: Option<String>,
    /// Directory holding `sources/` and `encoders/` (default: next to the binary's data).
    pub pipelines_dir: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            name: "peercam".into(),
            allowed_origins: Vec::new(),
            join_only: false,
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
        }
    }
}

impl Default for CameraConfig {
    fn default() -> Self {
        CameraConfig {
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
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server: ServerConfig::default(),
            limits: LimitsConfig::default(),
            camera: CameraConfig::default(),
        }
    }
}

/// A configuration that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
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

impl Config {
    /// Reads and validates a file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
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
        Ok(())
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
}
