//! What `peercam token` does: find the device's token (making it if the device has not
//! started yet), replace it with `--rotate`, and give the link to open. A running service
//! notices a replaced file within [`super::WATCH_PERIOD`] and ends the old sessions.
//!
//! It must not print: it returns the link and a sentence for the person, and `main` prints.

use std::path::Path;

use super::link::{by_address, link};
use super::{store, AccessError, Token};
use crate::config::{AuthMode, Config};
use crate::discovery::lan_addresses;

/// What the command found or did.
#[derive(Debug)]
pub struct Outcome {
    /// The link to open (with the token when one is needed).
    pub link: String,
    /// A sentence for the person (where the token is kept, what rotation did), if any.
    pub note: Option<String>,
    /// The same link by each LAN address, when the device listens on every address (see
    /// [`super::link::by_address`]).
    pub by_address: Vec<String>,
}

/// The link to open the device of `config` whose state directory is `state_dir`; with
/// `rotate`, after replacing its token.
pub fn token(
    config: &Config,
    state_dir: Option<&Path>,
    rotate: bool,
) -> Result<Outcome, AccessError> {
    let s = &config.server;
    let tls = config.tls.enabled;
    if config.auth.mode == AuthMode::None {
        if rotate {
            return Err(AccessError(
                "auth.mode is \"none\": the camera has no token to rotate".into(),
            ));
        }
        return Ok(Outcome {
            link: link(&s.name, s.listen, tls, None),
            note: Some("auth.mode is \"none\": anyone who can reach the port can watch".into()),
            by_address: by_address(s.listen, tls, None, &lan_addresses()),
        });
    }
    if let Some(text) = &config.auth.token {
        if rotate {
            return Err(AccessError(
                "the token is set in the configuration (auth.token): change it there".into(),
            ));
        }
        let token = Token::parse(text).map_err(|e| AccessError(format!("auth.token {e}")))?;
        return Ok(Outcome {
            link: link(&s.name, s.listen, tls, Some(&token)),
            note: None,
            by_address: by_address(s.listen, tls, Some(&token), &lan_addresses()),
        });
    }
    let Some(dir) = state_dir else {
        return Err(AccessError(
            "no state directory to keep the token in: set server.state_dir".into(),
        ));
    };
    let path = store::token_path(dir);
    // The packaged service's directory is its own user's: others need root to read it.
    let hint = |e: String| {
        // SAFETY: geteuid has no preconditions and cannot fail.
        let root = unsafe { libc::geteuid() } == 0;
        if root {
            AccessError(e)
        } else {
            AccessError(format!(
                "{e} (the service's token needs root: sudo peercam token)"
            ))
        }
    };
    let random = || {
        Token::generate().map_err(|e| AccessError(format!("no random bytes from the system: {e}")))
    };
    let (token, note) = if rotate {
        let token = random()?;
        store::replace(&path, &token).map_err(hint)?;
        let note = format!(
            "a new access token is in {}: links, bookmarks' cookies and open sessions made with \
             the old one no longer work (a running camera ends them within a second or two)",
            path.display()
        );
        (token, Some(note))
    } else {
        match store::read(&path).map_err(hint)? {
            Some((token, _)) => (token, None),
            None => {
                let (token, _) = store::create(&path, &random()?).map_err(hint)?;
                (
                    token,
                    Some(format!("made the access token in {}", path.display())),
                )
            }
        }
    };
    Ok(Outcome {
        link: link(&s.name, s.listen, tls, Some(&token)),
        note,
        by_address: by_address(s.listen, tls, Some(&token), &lan_addresses()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_makes_reads_and_rotates_the_token() {
        let dir = std::env::temp_dir().join(format!("peercam-token-cmd-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let config = Config::default();
        let first = token(&config, Some(&dir), false).unwrap();
        assert!(
            first.link.starts_with("https://peercam.local:8080/?token="),
            "{}",
            first.link
        );
        assert!(first.note.is_some());
        let again = token(&config, Some(&dir), false).unwrap();
        assert_eq!(again.link, first.link);
        assert!(again.note.is_none());
        let rotated = token(&config, Some(&dir), true).unwrap();
        assert_ne!(rotated.link, first.link);
        assert_eq!(
            token(&config, Some(&dir), false).unwrap().link,
            rotated.link
        );
        assert!(token(&config, None, false).is_err());

        let mut open = Config::default();
        open.auth.mode = AuthMode::None;
        assert_eq!(
            token(&open, Some(&dir), false).unwrap().link,
            "https://peercam.local:8080/"
        );
        assert!(token(&open, Some(&dir), true).is_err());
        let mut own = Config::default();
        own.auth.token = Some("z".repeat(32));
        own.tls.enabled = false;
        let link = token(&own, None, false).unwrap().link;
        assert_eq!(
            link,
            format!("http://peercam.local:8080/?token={}", "z".repeat(32))
        );
        assert!(token(&own, None, true)
            .unwrap_err()
            .to_string()
            .contains("auth.token"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
