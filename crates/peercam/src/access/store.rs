//! The token file, `token` in the state directory (mode 0600): reading it, making it on the
//! first start without ever replacing one another process made at the same moment, replacing
//! it on rotation (written beside and renamed into place, so a reader never sees half a
//! token), and the stamp that tells a running service the file has changed.
//!
//! A file written by root into a directory owned by the service's user (`sudo peercam token
//! --rotate`) is given to that user, so the service can still read it.
//!
//! It must not decide when to rotate or what a token is for.

use std::fs::File;
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::token::Token;

/// The token's file name in the state directory.
pub const TOKEN_FILE: &str = "token";

/// Larger files are refused unread: a token is at most a few hundred bytes.
const MAX_FILE_BYTES: u64 = 4096;

/// What identifies one version of the file: a rename gives a new inode, a rewrite in place a
/// new modification time or length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Inode number.
    ino: u64,
    /// Last modification.
    modified: Option<SystemTime>,
    /// Length in bytes.
    len: u64,
}

/// The stamp of the file at `path`, `None` when it is not there.
pub fn stamp(path: &Path) -> io::Result<Option<Stamp>> {
    match std::fs::metadata(path) {
        Ok(m) => Ok(Some(Stamp {
            ino: m.ino(),
            modified: m.modified().ok(),
            len: m.len(),
        })),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The token file of the state directory `dir`.
pub fn token_path(dir: &Path) -> PathBuf {
    dir.join(TOKEN_FILE)
}

/// Reads the token at `path`: `Ok(None)` when there is no file, an error naming the file
/// when it cannot be read or holds no valid token.
pub fn read(path: &Path) -> Result<Option<(Token, Option<Stamp>)>, String> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let stamp = stamp(path).ok().flatten();
    let mut text = String::new();
    std::io::Read::by_ref(&mut file)
        .take(MAX_FILE_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let token = Token::parse(&text)
        .map_err(|e| format!("{}: not an access token: it {e}", path.display()))?;
    Ok(Some((token, stamp)))
}

/// Writes `token` to a new file beside `path` (0600) and returns that file's name.
fn write_beside(path: &Path, token: &Token) -> io::Result<PathBuf> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let tmp = dir.join(format!(".{TOKEN_FILE}.{}.new", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(format!("{}\n", token.reveal()).as_bytes())?;
    file.sync_all()?;
    give_to_directory_owner(dir, &tmp);
    Ok(tmp)
}

/// Makes the file holding `token` at `path` unless one is there already; returns the token
/// the file holds afterwards (another process's, if it got there first).
pub fn create(path: &Path, token: &Token) -> Result<(Token, Option<Stamp>), String> {
    let named = |e: io::Error| format!("{}: {e}", path.display());
    let tmp = write_beside(path, token).map_err(named)?;
    // A hard link never replaces an existing name: of two processes starting at once, one
    // makes the file and the other reads it.
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(named(e)),
    }
    read(path)?.ok_or_else(|| format!("{}: vanished after it was made", path.display()))
}

/// Replaces the file at `path` with one holding `token`.
pub fn replace(path: &Path, token: &Token) -> Result<(), String> {
    let named = |e: io::Error| format!("{}: {e}", path.display());
    let tmp = write_beside(path, token).map_err(named)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        named(e)
    })
}

/// When this process runs as someone other than the owner of `dir` (root, changing the
/// service's directory), the file becomes the owner's, so the service can read it.
fn give_to_directory_owner(dir: &Path, file: &Path) {
    let Ok(meta) = std::fs::metadata(dir) else {
        return;
    };
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        if let Err(e) = std::os::unix::fs::chown(file, Some(meta.uid()), Some(meta.gid())) {
            log::warn!(
                "{}: could not give it to the owner of {} ({e}); the service may not read it",
                file.display(),
                dir.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("peercam-token-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn the_first_token_is_kept_and_later_ones_replace_it() {
        let dir = scratch("keep");
        let path = token_path(&dir.join("state"));
        assert_eq!(read(&path).unwrap(), None);
        let a = Token::generate().unwrap();
        let (kept, first) = create(&path, &a).unwrap();
        assert_eq!(kept, a);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        // A second start finds the first one's token.
        let (kept, _) = create(&path, &Token::generate().unwrap()).unwrap();
        assert_eq!(kept, a);
        let b = Token::generate().unwrap();
        replace(&path, &b).unwrap();
        let (now, second) = read(&path).unwrap().unwrap();
        assert_eq!(now, b);
        assert_ne!(first, second, "the stamp tells the versions apart");
        assert_eq!(stamp(&path).unwrap(), second);
        // No temporary files are left behind.
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(TOKEN_FILE)]);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_file_without_a_token_is_an_error_naming_it() {
        let dir = scratch("bad");
        std::fs::create_dir_all(&dir).unwrap();
        let path = token_path(&dir);
        std::fs::write(&path, "tiny\n").unwrap();
        let e = read(&path).unwrap_err();
        assert!(
            e.contains(&path.display().to_string()) && e.contains("at least 32"),
            "{e}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
