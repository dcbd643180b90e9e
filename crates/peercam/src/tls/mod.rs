//! The device's TLS identity: the certificate and key the port answers https and wss with,
//! where they come from, and the certificate's SHA-256 fingerprint, which a person compares
//! with what the browser shows.
//!
//! Two sources, in this order:
//!
//! - **Configured files** (`tls.cert`, `tls.key`): used as they are. Anything wrong with them
//!   is a start-up error naming the file, like any other configuration error.
//! - **A generated pair** kept in the state directory as `cert.pem` and `key.pem` (mode
//!   0600): an ECDSA P-256 self-signed certificate made on the first start and read back on
//!   every later one, so its fingerprint stays the same. It is valid for [`VALIDITY_DAYS`]
//!   and replaced at a start within [`RENEW_DAYS`] of its end. A pair that is there but
//!   cannot be used is never overwritten: unreadable files are left alone and a certificate
//!   is made in memory; files that read but are broken are renamed aside (`*.broken-<time>`)
//!   and a new pair is made. A pair that cannot be written (read-only or missing state
//!   directory) is kept in memory, and its fingerprint changes at each start. Each of these
//!   is logged with the file and what is wrong.
//!
//! This module is the policy (which source, when to renew, what to do with a pair that cannot
//! be used) and the public API. The parts it decides with live beside it: `store` (the kept
//! files and the state directory), `pem` (PEM text to DER), `certificate` (the rustls
//! configuration, the fingerprint, the end date) and `generate` (making a certificate).
//!
//! It must not know about sockets: `net.rs` does the handshakes with [`Identity::server_config`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

mod certificate;
mod generate;
mod pem;
mod store;

pub use certificate::{fingerprint, not_after};
pub use generate::generate;
pub use store::{default_state_dir, state_dir_from, CERT_FILE, KEY_FILE};

use certificate::{build, from_pem};
use pem::{parse_chain, parse_key};
use store::{read_pem, read_stored, set_aside, store, Stored};

/// Lifetime of a generated certificate, in days: under the 825 days Apple's platforms accept
/// for any TLS server certificate, so Safari can be told to trust it too.
pub const VALIDITY_DAYS: i64 = 800;
/// A generated certificate this close to its end (days) is replaced at start-up.
pub const RENEW_DAYS: i64 = 30;

/// Seconds in a day.
const DAY: i64 = 86_400;

/// Where the identity comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// `tls.cert` and `tls.key`, when both are set.
    pub files: Option<(PathBuf, PathBuf)>,
    /// Where a generated pair is kept; `None`: in memory only.
    pub state_dir: Option<PathBuf>,
    /// The device name: the generated certificate's CN, and its `<host label>.local` name.
    pub name: String,
}

/// Where the identity in use came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// `tls.cert` and `tls.key`.
    Configured,
    /// Generated on an earlier start, read from this directory.
    Stored(PathBuf),
    /// Generated now and written to this directory.
    Created(PathBuf),
    /// Generated now and kept in memory only: the fingerprint changes at each start.
    Ephemeral,
}

/// A configured certificate or key that cannot be used, or a certificate that could not be
/// made.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A configured file cannot be read or holds nothing usable.
    #[error("{} ({key}): {message}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// The configuration key that named it (`tls.cert`, `tls.key`).
        key: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The configured certificate and key do not go together.
    #[error("{} (tls.cert) and {} (tls.key): {message}", cert.display(), key.display())]
    Pair {
        /// `tls.cert`.
        cert: PathBuf,
        /// `tls.key`.
        key: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Making a certificate failed.
    #[error("generating a TLS certificate: {0}")]
    Generate(String),
}

/// The certificate chain and key the port serves, ready for rustls.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The rustls configuration built from the pair.
    config: Arc<rustls::ServerConfig>,
    /// SHA-256 of the leaf certificate, as [`fingerprint`] writes it.
    fingerprint: String,
    /// The leaf's notAfter, Unix seconds, when it could be read.
    not_after: Option<i64>,
    /// Where the pair came from.
    origin: Origin,
}

impl Identity {
    /// The identity for `settings`: the configured files, else the stored pair, else a new
    /// one (see the module comment). Blocking: reads and may write files.
    pub fn load(settings: &Settings) -> Result<Identity, TlsError> {
        match &settings.files {
            Some((cert, key)) => Identity::configured(cert, key),
            None => Identity::generated(settings),
        }
    }

    /// A new certificate for `name`, kept in memory only.
    pub fn ephemeral(name: &str) -> Result<Identity, TlsError> {
        let (cert_pem, key_pem) = generate(name, now())?;
        from_pem(cert_pem.as_bytes(), key_pem.as_bytes(), Origin::Ephemeral)
            .map_err(TlsError::Generate)
    }

    /// The rustls configuration for the port: this certificate, HTTP/1.1 over ALPN.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.config.clone()
    }

    /// SHA-256 of the certificate (DER), uppercase hex pairs joined by colons.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Where it came from.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The certificate's end of validity, Unix seconds, when it could be read.
    pub fn not_after(&self) -> Option<i64> {
        self.not_after
    }

    fn configured(cert: &Path, key: &Path) -> Result<Identity, TlsError> {
        let file_error = |path: &Path, key: &'static str, message: String| TlsError::File {
            path: path.to_owned(),
            key,
            message,
        };
        let cert_pem = read_pem(cert).map_err(|m| file_error(cert, "tls.cert", m))?;
        let key_pem = read_pem(key).map_err(|m| file_error(key, "tls.key", m))?;
        let chain = parse_chain(&cert_pem).map_err(|m| file_error(cert, "tls.cert", m))?;
        let private = parse_key(&key_pem).map_err(|m| file_error(key, "tls.key", m))?;
        let identity =
            build(chain, private, Origin::Configured).map_err(|message| TlsError::Pair {
                cert: cert.to_owned(),
                key: key.to_owned(),
                message,
            })?;
        if let Some(end) = identity.not_after {
            if end <= now() {
                log::warn!(
                    "TLS: the certificate {} expired on {}; browsers will refuse it",
                    cert.display(),
                    date(end)
                );
            } else if end - now() < RENEW_DAYS * DAY {
                log::warn!(
                    "TLS: the certificate {} expires on {}",
                    cert.display(),
                    date(end)
                );
            }
        }
        log::info!(
            "TLS: certificate {} and key {} (configured)",
            cert.display(),
            key.display()
        );
        Ok(identity)
    }

    fn generated(settings: &Settings) -> Result<Identity, TlsError> {
        let Some(dir) = &settings.state_dir else {
            log::warn!(
                "TLS: no state directory (none configured, and $STATE_DIRECTORY, \
                 $XDG_STATE_HOME and $HOME are unset): the certificate is kept in memory \
                 and its fingerprint will change at each start"
            );
            return Identity::ephemeral(&settings.name);
        };
        let cert_path = dir.join(CERT_FILE);
        let key_path = dir.join(KEY_FILE);
        match read_stored(&cert_path, &key_path) {
            Stored::Usable(identity) => {
                let left = identity.not_after.map(|end| end - now());
                if left.is_some_and(|left| left < RENEW_DAYS * DAY) {
                    log::warn!(
                        "TLS: the generated certificate {} ends on {}; making a new one (the \
                         fingerprint changes)",
                        cert_path.display(),
                        identity.not_after.map(date).unwrap_or_default()
                    );
                } else {
                    log::info!(
                        "TLS: certificate {} (generated earlier)",
                        cert_path.display()
                    );
                    return Ok(identity);
                }
            }
            Stored::Missing => {}
            Stored::Unreadable { path, error } => {
                log::error!(
                    "TLS: cannot read {}: {error}; left as it is, and the certificate is kept \
                     in memory (its fingerprint will change at each start)",
                    path.display()
                );
                return Identity::ephemeral(&settings.name);
            }
            Stored::Broken { path, problem } => {
                log::error!("TLS: {}: {problem}", path.display());
                for file in [&cert_path, &key_path] {
                    if let Err(e) = set_aside(file) {
                        log::error!(
                            "TLS: cannot rename {} aside ({e}); it is left as it is, and the \
                             certificate is kept in memory (its fingerprint will change at \
                             each start)",
                            file.display()
                        );
                        return Identity::ephemeral(&settings.name);
                    }
                }
            }
        }
        let (cert_pem, key_pem) = generate(&settings.name, now())?;
        let origin = match store(dir, &cert_pem, &key_pem) {
            Ok(()) => {
                log::info!(
                    "TLS: generated a self-signed certificate in {}",
                    cert_path.display()
                );
                Origin::Created(dir.clone())
            }
            Err(e) => {
                log::warn!(
                    "TLS: cannot keep the certificate in {} ({e}): it is kept in memory and \
                     its fingerprint will change at each start",
                    dir.display()
                );
                Origin::Ephemeral
            }
        };
        from_pem(cert_pem.as_bytes(), key_pem.as_bytes(), origin).map_err(TlsError::Generate)
    }
}

/// The clock, Unix seconds.
fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `YYYY-MM-DD` (UTC) for Unix seconds.
fn date(secs: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp(secs) {
        Ok(t) => format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()),
        Err(_) => format!("{secs} (Unix time)"),
    }
}
