//! The files: where the generated pair is kept (the state directory), reading it back and
//! telling what is there, writing a new pair safely (0700 directory, 0600 key, write beside
//! and rename), setting a broken pair aside, and reading a PEM file of bounded size.
//!
//! It must not decide anything: whether to renew, to make a new pair or to stay in memory is
//! the identity policy's ([`super::Identity`]). It never overwrites or deletes a kept file
//! except by the rename it is asked to do.

use std::ffi::OsStr;
use std::io::{self, Read as _, Write as _};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use super::certificate::build;
use super::pem::{parse_chain, parse_key};
use super::{now, Identity, Origin};

/// The generated certificate's file in the state directory.
pub const CERT_FILE: &str = "cert.pem";
/// The generated key's file in the state directory (mode 0600).
pub const KEY_FILE: &str = "key.pem";

/// Larger PEM files are refused unread: a certificate chain and a key are a few kilobytes.
const MAX_PEM_BYTES: u64 = 1 << 20;

/// What the state directory holds.
pub(super) enum Stored {
    /// Both files present and usable.
    Usable(Identity),
    /// Neither file is there.
    Missing,
    /// A file is there but cannot be read (permissions, I/O).
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why it cannot be read.
        error: String,
    },
    /// Readable, but not a usable pair.
    Broken {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
}

/// Reads the kept pair at `cert` and `key` and says what it is.
pub(super) fn read_stored(cert: &Path, key: &Path) -> Stored {
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
pub(super) fn set_aside(path: &Path) -> io::Result<()> {
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
pub(super) fn store(dir: &Path, cert_pem: &str, key_pem: &str) -> io::Result<()> {
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
pub(super) fn read_pem(path: &Path) -> Result<Vec<u8>, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
