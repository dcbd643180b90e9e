//! Where peercam's files are relative to its programs. A package puts `peercam` in
//! `PREFIX/bin`, the media program in `PREFIX/libexec/peercam` and the pipeline descriptions
//! in `PREFIX/share/peercam/pipelines` (PREFIX `/usr` for the .deb; `/usr/local` or `/opt/…`
//! for a hand install). A build tree has both programs side by side in `target/<profile>/`.

use std::path::{Path, PathBuf};

/// The media program's file name.
pub const MEDIA_PROGRAM: &str = "peercam-media";

/// The installation prefix of a program in `PREFIX/bin/` or `PREFIX/libexec/peercam/`.
pub fn prefix(exe: &Path) -> Option<&Path> {
    let dir = exe.parent()?;
    if dir.ends_with("libexec/peercam") {
        dir.parent()?.parent()
    } else {
        dir.parent()
    }
}

/// The media program for the serving program `exe`: beside it when it is there (a build
/// tree, or both copied to one directory), else in `PREFIX/libexec/peercam/`, else
/// `/usr/libexec/peercam/` (the package's place, named in the error if it is missing too).
pub fn media_program(exe: &Path, exists: impl Fn(&Path) -> bool) -> PathBuf {
    let sibling = exe.with_file_name(MEDIA_PROGRAM);
    if exists(&sibling) {
        return sibling;
    }
    let libexec = |prefix: &Path| prefix.join("libexec/peercam").join(MEDIA_PROGRAM);
    match prefix(exe).map(libexec) {
        Some(path) if exists(&path) => path,
        _ => libexec(Path::new("/usr")),
    }
}

/// [`media_program`] for this process's executable.
pub fn this_media_program() -> std::io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(media_program(&exe, Path::is_file))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_of_bin_and_libexec_programs() {
        assert_eq!(
            prefix(Path::new("/usr/bin/peercam")),
            Some(Path::new("/usr"))
        );
        assert_eq!(
            prefix(Path::new("/opt/pc/libexec/peercam/peercam-media")),
            Some(Path::new("/opt/pc"))
        );
        assert_eq!(
            prefix(Path::new("/src/target/release/peercam-media")),
            Some(Path::new("/src/target"))
        );
    }

    #[test]
    fn media_program_sibling_then_prefix_then_usr() {
        let exe = Path::new("/usr/local/bin/peercam");
        let sibling = Path::new("/usr/local/bin/peercam-media");
        let local = Path::new("/usr/local/libexec/peercam/peercam-media");
        let usr = Path::new("/usr/libexec/peercam/peercam-media");
        assert_eq!(media_program(exe, |p| p == sibling || p == local), sibling);
        assert_eq!(media_program(exe, |p| p == local), local);
        assert_eq!(media_program(exe, |_| false), usr);
        assert_eq!(
            media_program(Path::new("/src/target/debug/peercam"), |_| true),
            Path::new("/src/target/debug/peercam-media")
        );
    }
}
