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
//! It must not know about sockets: `net.rs` does the handshakes with [`Identity::server_config`].

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::io::{self, Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The generated certificate's file in the state directory.
pub const CERT_FILE: &str = "cert.pem";
/// The generated key's file in the state directory (mode 0600).
pub const KEY_FILE: &str = "key.pem";

/// Lifetime of a generated certificate, in days: under the 825 days Apple's platforms accept
/// for any TLS server certificate, so Safari can be told to trust it too.
pub const VALIDITY_DAYS: i64 = 800;
/// A generated certificate this close to its end (days) is replaced at start-up.
pub const RENEW_DAYS: i64 = 30;

/// Larger PEM files are refused unread: a certificate chain and a key are a few kilobytes.
const MAX_PEM_BYTES: u64 = 1 << 20;

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
    config: Arc<rustls::ServerConfig>,
    fingerprint: String,
    not_after: Option<i64>,
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

/// What the state directory holds.
enum Stored {
    /// Both files present and usable.
    Usable(Identity),
    /// Neither file is there.
    Missing,
    /// A file is there but cannot be read (permissions, I/O).
    Unreadable { path: PathBuf, error: String },
    /// Readable, but not a usable pair.
    Broken { path: PathBuf, problem: String },
}

fn read_stored(cert: &Path, key: &Path) -> Stored {
    let read = |path: &Path| match std::fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        _ => read_pem(path).map(Some),
    };
    let (cert_pem, key_pem) = match (read(cert), read(key)) {
        (Ok(None), Ok(None)) => return Stored::Missing,
        (Err(error), _) => {
            return Stored::Unreadable {
                path: cert.to_owned(),
                error,
            }
        }
        (_, Err(error)) => {
            return Stored::Unreadable {
                path: key.to_owned(),
                error,
            }
        }
        (Ok(Some(c)), Ok(Some(k))) => (c, k),
        (Ok(Some(_)), Ok(None)) => {
            return Stored::Broken {
                path: key.to_owned(),
                problem: "missing beside its certificate".into(),
            }
        }
        (Ok(None), Ok(Some(_))) => {
            return Stored::Broken {
                path: cert.to_owned(),
                problem: "missing beside its key".into(),
            }
        }
    };
    let origin = Origin::Stored(cert.parent().unwrap_or(Path::new("/")).to_owned());
    let broken = |path: &Path| {
        let path = path.to_owned();
        move |problem| Stored::Broken { path, problem }
    };
    let chain = match parse_chain(&cert_pem).map_err(broken(cert)) {
        Ok(chain) => chain,
        Err(stored) => return stored,
    };
    let private = match parse_key(&key_pem).map_err(broken(key)) {
        Ok(k) => k,
        Err(stored) => return stored,
    };
    match build(chain, private, origin) {
        Ok(identity) => Stored::Usable(identity),
        Err(problem) => Stored::Broken {
            path: cert.to_owned(),
            problem: format!("does not go with {}: {problem}", key.display()),
        },
    }
}

/// Renames `path` to `<path>.broken-<unix time>`, if it exists.
fn set_aside(path: &Path) -> io::Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let mut aside = path.as_os_str().to_owned();
    aside.push(format!(".broken-{}", now()));
    std::fs::rename(path, &aside)?;
    log::error!(
        "TLS: renamed {} to {}; a new certificate is made (the fingerprint changes)",
        path.display(),
        Path::new(&aside).display()
    );
    Ok(())
}

/// Writes the pair: the directory made if needed (0700), each file written beside its final
/// name and renamed into place, so a crash never leaves half a file; the key 0600.
fn store(dir: &Path, cert_pem: &str, key_pem: &str) -> io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let write = |name: &str, text: &str, mode: u32| -> io::Result<PathBuf> {
        let tmp = dir.join(format!(".{name}.tmp"));
        let _ = std::fs::remove_file(&tmp);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        Ok(tmp)
    };
    let written = write(KEY_FILE, key_pem, 0o600).and_then(|key| {
        let cert = write(CERT_FILE, cert_pem, 0o644)?;
        Ok((key, cert))
    });
    let (key_tmp, cert_tmp) = match written {
        Ok(files) => files,
        Err(e) => {
            let _ = std::fs::remove_file(dir.join(format!(".{KEY_FILE}.tmp")));
            let _ = std::fs::remove_file(dir.join(format!(".{CERT_FILE}.tmp")));
            return Err(e);
        }
    };
    std::fs::rename(&key_tmp, dir.join(KEY_FILE))?;
    std::fs::rename(&cert_tmp, dir.join(CERT_FILE))
}

/// A file's text, at most [`MAX_PEM_BYTES`]; the error says what went wrong.
fn read_pem(path: &Path) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(format!(
            "larger than {} KiB: not a PEM certificate or key",
            MAX_PEM_BYTES / 1024
        ));
    }
    Ok(bytes)
}

fn parse_chain(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not valid PEM: {e}"))?;
    if chain.is_empty() {
        return Err("no certificate in it (expected a PEM \"BEGIN CERTIFICATE\" block)".into());
    }
    Ok(chain)
}

fn parse_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => "no private key in it (expected a PEM \
             \"BEGIN PRIVATE KEY\", \"BEGIN EC PRIVATE KEY\" or \"BEGIN RSA PRIVATE KEY\" \
             block; encrypted keys are not supported)"
            .to_owned(),
        e => format!("not valid PEM: {e}"),
    })
}

fn from_pem(cert_pem: &[u8], key_pem: &[u8], origin: Origin) -> Result<Identity, String> {
    build(parse_chain(cert_pem)?, parse_key(key_pem)?, origin)
}

/// The rustls configuration for a chain and its key; fails when rustls cannot use them
/// (a certificate it cannot parse, an unsupported key, a key of another certificate).
fn build(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    origin: Origin,
) -> Result<Identity, String> {
    // `parse_chain` never returns an empty chain.
    let leaf = chain.first().ok_or("no certificate")?.clone();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| e.to_string())?;
    // The HTTP stack behind the handshake speaks HTTP/1.1 only (WebSocket upgrades need it).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Identity {
        config: Arc::new(config),
        fingerprint: fingerprint(&leaf),
        not_after: not_after(&leaf),
        origin,
    })
}

/// A self-signed ECDSA P-256 certificate for `name` and its key, both PEM, valid from a day
/// before `now` (clocks of boards without an RTC may lag) for [`VALIDITY_DAYS`]. Names:
/// `<host label>.local`, `localhost`, 127.0.0.1 and ::1; CN: `name`.
pub fn generate(name: &str, now: i64) -> Result<(String, String), TlsError> {
    let err = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(err)?;
    let host = format!("{}.local", crate::discovery::host_label(name));
    let mut params =
        rcgen::CertificateParams::new(vec![host, "localhost".to_owned()]).map_err(err)?;
    params.subject_alt_names.extend([
        rcgen::SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        rcgen::SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)),
    ]);
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let at = |secs: i64| {
        time::OffsetDateTime::from_unix_timestamp(secs)
            .map_err(|e| TlsError::Generate(format!("the clock reads {secs}: {e}")))
    };
    params.not_before = at(now - DAY)?;
    params.not_after = at(now + VALIDITY_DAYS * DAY)?;
    let cert = params.self_signed(&key).map_err(err)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// SHA-256 of `der`, uppercase hex pairs joined by colons: what
/// `openssl x509 -noout -fingerprint -sha256` prints after the `=`, and what browsers show.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let mut out = String::with_capacity(95);
    for (i, byte) in digest.as_ref().iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        // Writing to a String cannot fail.
        let _ = write!(out, "{byte:02X}");
    }
    out
}

/// The default state directory from the environment's values: `$STATE_DIRECTORY` (set by
/// systemd for `StateDirectory=`; the first of a colon-separated list), else
/// `$XDG_STATE_HOME/peercam`, else `$HOME/.local/state/peercam`. Relative or empty values
/// are ignored, as the XDG specification asks.
pub fn state_dir_from(
    state_directory: Option<&OsStr>,
    xdg_state_home: Option<&OsStr>,
    home: Option<&OsStr>,
) -> Option<PathBuf> {
    let absolute = |v: &OsStr| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    if let Some(dirs) = state_directory {
        let first = dirs.as_bytes().split(|&b| b == b':').next().unwrap_or(&[]);
        if let Some(dir) = absolute(OsStr::from_bytes(first)) {
            return Some(dir);
        }
    }
    if let Some(dir) = xdg_state_home.and_then(absolute) {
        return Some(dir.join("peercam"));
    }
    home.and_then(absolute)
        .map(|home| home.join(".local/state/peercam"))
}

/// [`state_dir_from`] with this process's environment.
pub fn default_state_dir() -> Option<PathBuf> {
    let var = std::env::var_os;
    state_dir_from(
        var("STATE_DIRECTORY").as_deref(),
        var("XDG_STATE_HOME").as_deref(),
        var("HOME").as_deref(),
    )
}

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

/// One DER element at the start of `der`: tag, contents, what follows.
fn tlv(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |len, &b| (len << 8) | usize::from(b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

/// The certificate's notAfter, Unix seconds; `None` when the DER does not have the shape of
/// an X.509 certificate. rustls has already parsed the certificate when this runs; this only
/// reads the one field it does not expose.
pub fn not_after(der: &[u8]) -> Option<i64> {
    const SEQUENCE: u8 = 0x30;
    let (SEQUENCE, certificate, _) = tlv(der)? else {
        return None;
    };
    let (SEQUENCE, mut tbs, _) = tlv(certificate)? else {
        return None;
    };
    // [0] version, when present; then serialNumber, signature, issuer, validity.
    let (tag, _, rest) = tlv(tbs)?;
    if tag == 0xa0 {
        tbs = rest;
    }
    for _ in 0..3 {
        tbs = tlv(tbs)?.2;
    }
    let (SEQUENCE, validity, _) = tlv(tbs)? else {
        return None;
    };
    let (_, _, rest) = tlv(validity)?;
    let (tag, time, _) = tlv(rest)?;
    der_time(tag, time)
}

/// UTCTime (`YYMMDDHHMMSSZ`) or GeneralizedTime (`YYYYMMDDHHMMSSZ`) as Unix seconds.
fn der_time(tag: u8, text: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(text).ok()?.strip_suffix('Z')?;
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (year, rest) = match (tag, text.len()) {
        (0x17, 12) => {
            let yy: i32 = text[..2].parse().ok()?;
            // RFC 5280 §4.1.2.5.1: 50–99 are 19xx, 00–49 are 20xx.
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &text[2..])
        }
        (0x18, 14) => (text[..4].parse().ok()?, &text[4..]),
        _ => return None,
    };
    let field = |i: usize| rest.get(i..i + 2)?.parse::<u8>().ok();
    let month = time::Month::try_from(field(0)?).ok()?;
    let date = time::Date::from_calendar_date(year, month, field(2)?).ok()?;
    let clock = time::Time::from_hms(field(4)?, field(6)?, field(8)?).ok()?;
    Some(
        time::PrimitiveDateTime::new(date, clock)
            .assume_utc()
            .unix_timestamp(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_uppercase_hex_pairs_with_colons() {
        // SHA-256("abc"), FIPS 180-2's first example.
        assert_eq!(
            fingerprint(b"abc"),
            "BA:78:16:BF:8F:01:CF:EA:41:41:40:DE:5D:AE:22:23:B0:03:61:A3:96:17:7A:9C:\
             B4:10:FF:61:F2:00:15:AD"
        );
        let fp = fingerprint(b"");
        assert_eq!(fp.len(), 95);
        assert!(fp.starts_with("E3:B0:C4:42:"), "{fp}");
    }

    #[test]
    fn the_state_directory_follows_systemd_then_xdg_then_home() {
        let s = |v: &'static str| Some(OsStr::new(v));
        let dir = |p: &str| Some(PathBuf::from(p));
        assert_eq!(
            state_dir_from(s("/var/lib/peercam"), s("/x"), s("/home/u")),
            dir("/var/lib/peercam")
        );
        assert_eq!(
            state_dir_from(s("/var/lib/peercam:/var/lib/other"), None, None),
            dir("/var/lib/peercam")
        );
        assert_eq!(
            state_dir_from(None, s("/home/u/.st"), s("/home/u")),
            dir("/home/u/.st/peercam")
        );
        assert_eq!(
            state_dir_from(None, None, s("/home/u")),
            dir("/home/u/.local/state/peercam")
        );
        // Empty and relative values do not count.
        assert_eq!(
            state_dir_from(s(""), s("relative"), s("/home/u")),
            dir("/home/u/.local/state/peercam")
        );
        assert_eq!(state_dir_from(None, None, s("")), None);
        assert_eq!(state_dir_from(None, None, None), None);
    }

    #[test]
    fn generated_certificates_name_the_device_and_last_800_days() {
        let now = 1_700_000_000;
        let (cert_pem, key_pem) = generate("Porch Cam", now).unwrap();
        let identity = from_pem(cert_pem.as_bytes(), key_pem.as_bytes(), Origin::Ephemeral)
            .expect("rustls takes the generated pair");
        assert_eq!(identity.not_after(), Some(now + VALIDITY_DAYS * DAY));
        let der = parse_chain(cert_pem.as_bytes()).unwrap().remove(0);
        assert_eq!(identity.fingerprint(), fingerprint(&der));
        // The names are in the DER as plain ASCII.
        let raw = String::from_utf8_lossy(&der);
        assert!(raw.contains("porch-cam.local") && raw.contains("localhost"));
        assert!(raw.contains("Porch Cam"));
        assert_eq!(
            identity.server_config().alpn_protocols,
            vec![b"http/1.1".to_vec()]
        );
        // Two certificates never share a fingerprint.
        assert_ne!(
            Identity::ephemeral("x").unwrap().fingerprint(),
            Identity::ephemeral("x").unwrap().fingerprint()
        );
    }

    #[test]
    fn der_times_read_both_encodings() {
        assert_eq!(der_time(0x17, b"700101000000Z"), Some(0));
        assert_eq!(der_time(0x17, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(der_time(0x18, b"20231114221320Z"), Some(1_700_000_000));
        for bad in [
            &b"7001010000Z"[..],
            b"701301000000Z",
            b"70010100000aZ",
            b"700101000000",
        ] {
            assert_eq!(der_time(0x17, bad), None, "{bad:?}");
        }
        assert_eq!(der_time(0x04, b"700101000000Z"), None);
    }

    #[test]
    fn malformed_der_has_no_end_date_and_never_panics() {
        let (cert_pem, _) = generate("x", 1_700_000_000).unwrap();
        let der = parse_chain(cert_pem.as_bytes()).unwrap().remove(0).to_vec();
        assert!(not_after(&der).is_some());
        for cut in 0..der.len() {
            // Cut short, or with a byte flipped: an answer or None, never a panic.
            let _ = not_after(&der[..cut]);
            let mut flipped = der.clone();
            flipped[cut] ^= 0xff;
            let _ = not_after(&flipped);
        }
        assert_eq!(not_after(&[]), None);
        assert_eq!(not_after(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
    }

    #[test]
    fn pem_problems_are_described() {
        assert!(parse_chain(b"hello")
            .unwrap_err()
            .contains("no certificate"));
        let e = parse_chain(b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n")
            .unwrap_err();
        assert!(e.contains("not valid PEM"), "{e}");
        assert!(parse_key(b"").unwrap_err().contains("no private key"));
        // A certificate that is PEM but not DER.
        let junk = "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n";
        let (_, key) = generate("x", 1_700_000_000).unwrap();
        assert!(from_pem(junk.as_bytes(), key.as_bytes(), Origin::Configured).is_err());
        // A key of another certificate.
        let (cert, _) = generate("x", 1_700_000_000).unwrap();
        let e = from_pem(cert.as_bytes(), key.as_bytes(), Origin::Configured).unwrap_err();
        assert!(e.to_lowercase().contains("key"), "{e}");
    }
}
