//! Who may watch: the device's access token and the judgement of each request's credentials.
//!
//! With `auth.mode = "token"` (the default) the page, the API and the WebSocket need the
//! token: in the `token` query parameter, an `Authorization: Bearer` header, or the session
//! cookie derived from it ([`carrier`]). The token is the configuration's `auth.token`, or
//! the one kept in the state directory's `token` file ([`store`]), made on the first start.
//! Each judgement first looks whether that file has changed (`peercam token --rotate`), as
//! does a task every [`WATCH_PERIOD`]: a new token ends every session opened with the old one
//! ([`Access::sessions`] tells the WebSockets), and old cookies stop working. Wrong tokens
//! are counted per client address ([`limiter`]).
//!
//! This module owns the current token and the failure counts. It must not know HTTP or
//! WebSockets (the routes and the signaling server do), and must never log a token.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::config::{AuthMode, Config};

pub mod carrier;
pub mod command;
pub mod limiter;
pub mod link;
pub mod store;
pub mod token;

pub use carrier::Credentials;
pub use limiter::{Allowance, FailureLimiter, LimiterSettings};
pub use token::{redact, Token};

/// How often a running service looks at its token file, so a rotation ends the old
/// sessions within about this long even when no request comes.
pub const WATCH_PERIOD: Duration = Duration::from_secs(1);

/// Where the token came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// No token: `auth.mode = "none"`.
    Open,
    /// `auth.token` in the configuration.
    Configured,
    /// The token file at this path.
    File(PathBuf),
    /// Made for this run only (no state directory could keep it).
    Memory,
}

/// The judgement of one request's credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// No token is needed.
    Open,
    /// A valid token; `by_cookie` when only the session cookie carried it.
    Granted {
        /// Whether the session cookie (and not the token itself) was the valid credential.
        by_cookie: bool,
    },
    /// Nothing was presented.
    Missing,
    /// Something was presented and none of it is valid (counted against the address).
    Wrong,
    /// Too many wrong tokens from this address; try again after this long.
    Limited(Duration),
}

/// The current token and which version of its file it came from.
struct Current {
    /// The token.
    token: Token,
    /// The file's stamp when it was read (`None` without a file).
    stamp: Option<store::Stamp>,
}

/// What a device that needs a token holds.
struct Guarded {
    /// The token in use.
    current: Mutex<Current>,
    /// The token file, when the token came from one.
    file: Option<PathBuf>,
    /// Wrong tokens per address.
    limiter: Mutex<FailureLimiter>,
    /// Bumped at every new token; each WebSocket admitted with a token watches it.
    generation: watch::Sender<u64>,
}

/// The device's access policy. Shared by the routes, the signaling server and the watch task.
pub struct Access {
    /// `None` when the camera is open to anyone who reaches the port.
    guarded: Option<Guarded>,
    /// Where the token came from.
    source: Source,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// The token could not be read or kept.
#[derive(Debug, thiserror::Error)]
#[error("access token: {0}")]
pub struct AccessError(pub String);

impl Access {
    /// No token needed.
    pub fn open() -> Arc<Access> {
        Arc::new(Access {
            guarded: None,
            source: Source::Open,
        })
    }

    /// `token` needed, with the default failure limits.
    pub fn with_token(token: Token, source: Source) -> Arc<Access> {
        Access::with_limits(token, source, LimiterSettings::default())
    }

    /// `token` needed, failures limited by `limits`.
    pub fn with_limits(token: Token, source: Source, limits: LimiterSettings) -> Arc<Access> {
        let (file, stamp) = match &source {
            Source::File(path) => (Some(path.clone()), store::stamp(path).ok().flatten()),
            _ => (None, None),
        };
        Arc::new(Access {
            guarded: Some(Guarded {
                current: Mutex::new(Current { token, stamp }),
                file,
                limiter: Mutex::new(FailureLimiter::new(limits)),
                generation: watch::Sender::new(0),
            }),
            source,
        })
    }

    /// The policy of `config` without touching the disk: open, the configured token, or a
    /// token made for this run (what an in-process device gets; the service uses [`load`]).
    pub fn in_memory(config: &Config) -> Result<Arc<Access>, AccessError> {
        match configured(config)? {
            Some(access) => Ok(access),
            None => Ok(Access::with_token(random()?, Source::Memory)),
        }
    }

    /// The policy of `config`, the token read from (or, the first time, made in) `state_dir`.
    /// A token file that cannot be read or holds no token is an error; without a state
    /// directory, or one that cannot be written, the token lives in memory for this run.
    pub fn load(config: &Config, state_dir: Option<&Path>) -> Result<Arc<Access>, AccessError> {
        if let Some(access) = configured(config)? {
            return Ok(access);
        }
        let Some(dir) = state_dir else {
            log::warn!(
                "access token: no state directory to keep it in; a new one is made at each start"
            );
            return Ok(Access::with_token(random()?, Source::Memory));
        };
        let path = store::token_path(dir);
        if let Some((token, _)) = store::read(&path).map_err(AccessError)? {
            return Ok(Access::with_token(token, Source::File(path)));
        }
        match store::create(&path, &random()?) {
            Ok((token, _)) => {
                log::info!("access token: made a new one in {}", path.display());
                Ok(Access::with_token(token, Source::File(path)))
            }
            Err(e) => {
                log::warn!("access token: cannot keep it ({e}); a new one is made at each start");
                Ok(Access::with_token(random()?, Source::Memory))
            }
        }
    }

    /// Whether a token is needed.
    pub fn required(&self) -> bool {
        self.guarded.is_some()
    }

    /// Where the token came from.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// The token in use (after looking at its file), `None` when none is needed.
    pub fn token(&self) -> Option<Token> {
        self.refresh();
        let g = self.guarded.as_ref()?;
        Some(lock(&g.current).token.clone())
    }

    /// Judges `credentials` presented from `addr`. An address with too many wrong tokens
    /// lately is refused before its credentials are looked at.
    pub fn check(&self, now: Instant, addr: IpAddr, credentials: &Credentials<'_>) -> Verdict {
        let Some(g) = &self.guarded else {
            return Verdict::Open;
        };
        // The token file is looked at by the watch (`spawn_watch`), not here: no request waits
        // on the disk.
        if let Allowance::Limited(wait) = lock(&g.limiter).check(addr, now) {
            return Verdict::Limited(wait);
        }
        let current = lock(&g.current);
        // Every credential is compared, whichever matches, so timing tells nothing of which.
        let by_query = credentials.query.is_some_and(|t| current.token.matches(t));
        let by_header = credentials.bearer.is_some_and(|t| current.token.matches(t));
        let by_cookie = credentials
            .cookies
            .iter()
            .fold(false, |ok, c| current.token.matches_cookie(c) | ok);
        drop(current);
        if by_query || by_header {
            Verdict::Granted { by_cookie: false }
        } else if by_cookie {
            Verdict::Granted { by_cookie: true }
        } else if credentials.presented() {
            lock(&g.limiter).failed(addr, now);
            Verdict::Wrong
        } else {
            Verdict::Missing
        }
    }

    /// The session cookie's value for the current token.
    pub fn cookie_value(&self) -> Option<String> {
        let g = self.guarded.as_ref()?;
        Some(lock(&g.current).token.cookie_value())
    }

    /// Changes when the token does: a WebSocket admitted with the token ends then. `None`
    /// when no token is needed.
    pub fn sessions(&self) -> Option<watch::Receiver<u64>> {
        Some(self.guarded.as_ref()?.generation.subscribe())
    }

    /// Reads the token file again if it changed since it was last read. A file that has gone
    /// or cannot be used leaves the current token in place (and says so).
    pub fn refresh(&self) {
        let Some(g) = &self.guarded else { return };
        let Some(path) = &g.file else { return };
        let stamp = store::stamp(path).ok().flatten();
        let mut current = lock(&g.current);
        if stamp == current.stamp || stamp.is_none() {
            return;
        }
        current.stamp = stamp;
        match store::read(path) {
            Ok(Some((token, stamp))) => {
                current.stamp = stamp;
                if token != current.token {
                    current.token = token;
                    drop(current);
                    g.generation.send_modify(|n| *n += 1);
                    log::info!(
                        "access token changed ({}); sessions opened with the old one are ended",
                        path.display()
                    );
                }
            }
            Ok(None) => {}
            Err(e) => log::warn!("access token: keeping the current one: {e}"),
        }
    }

    /// Looks at the token file every [`WATCH_PERIOD`] for as long as this policy lives, so a
    /// rotation ends the old sessions without waiting for a request. Needs a Tokio runtime.
    pub fn spawn_watch(self: &Arc<Self>) {
        let has_file = self.guarded.as_ref().is_some_and(|g| g.file.is_some());
        if !has_file {
            return;
        }
        let weak: Weak<Access> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(WATCH_PERIOD);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(access) = weak.upgrade() else { return };
                access.refresh();
            }
        });
    }
}

/// Open, or the configured token; `None` when the token comes from the state directory.
fn configured(config: &Config) -> Result<Option<Arc<Access>>, AccessError> {
    if config.auth.mode == AuthMode::None {
        return Ok(Some(Access::open()));
    }
    match &config.auth.token {
        Some(text) => {
            let token = Token::parse(text).map_err(|e| AccessError(format!("auth.token {e}")))?;
            Ok(Some(Access::with_token(token, Source::Configured)))
        }
        None => Ok(None),
    }
}

fn random() -> Result<Token, AccessError> {
    Token::generate().map_err(|e| AccessError(format!("no random bytes from the system: {e}")))
}

/// Locks `m`; a panic elsewhere while it was held leaves plain data that is still whole.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The state directory the `token` and `check` commands use: `server.state_dir`, else
/// `$STATE_DIRECTORY` (as the service has it under systemd), else `/var/lib/peercam` when it
/// exists (the packaged service's, for an administrator's shell), else the one a service
/// run by this user would use.
pub fn command_state_dir(config: &Config) -> Option<PathBuf> {
    if let Some(dir) = &config.server.state_dir {
        return Some(dir.clone());
    }
    if std::env::var_os("STATE_DIRECTORY").is_some_and(|d| !d.is_empty()) {
        return crate::tls::default_state_dir();
    }
    let packaged = Path::new("/var/lib/peercam");
    if packaged.is_dir() {
        return Some(packaged.to_owned());
    }
    crate::tls::default_state_dir()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn creds(query: Option<&str>) -> Credentials<'_> {
        Credentials {
            query,
            ..Credentials::default()
        }
    }

    #[test]
    fn the_token_cookie_and_header_are_granted_and_nothing_else() {
        let t = Token::generate().unwrap();
        let access = Access::with_token(t.clone(), Source::Memory);
        let now = Instant::now();
        let a = addr("192.0.2.1");
        let cookie = t.cookie_value();
        assert_eq!(
            access.check(now, a, &creds(Some(t.reveal()))),
            Verdict::Granted { by_cookie: false }
        );
        let header = Credentials {
            bearer: Some(t.reveal()),
            ..Credentials::default()
        };
        assert_eq!(
            access.check(now, a, &header),
            Verdict::Granted { by_cookie: false }
        );
        let by_cookie = Credentials {
            cookies: vec!["stale", &cookie],
            ..Credentials::default()
        };
        assert_eq!(
            access.check(now, a, &by_cookie),
            Verdict::Granted { by_cookie: true }
        );
        assert_eq!(access.check(now, a, &creds(None)), Verdict::Missing);
        assert_eq!(access.check(now, a, &creds(Some("nope"))), Verdict::Wrong);
        assert!(Access::open().check(now, a, &creds(None)) == Verdict::Open);
    }

    #[test]
    fn wrong_tokens_limit_only_their_address_even_with_the_right_one_after() {
        let t = Token::generate().unwrap();
        let limits = LimiterSettings {
            burst: 3,
            refill: Duration::from_secs(60),
            max_addresses: 16,
        };
        let access = Access::with_limits(t.clone(), Source::Memory, limits);
        let now = Instant::now();
        let attacker = addr("192.0.2.66");
        for _ in 0..3 {
            assert_eq!(
                access.check(now, attacker, &creds(Some("guess"))),
                Verdict::Wrong
            );
        }
        assert!(matches!(
            access.check(now, attacker, &creds(Some(t.reveal()))),
            Verdict::Limited(_)
        ));
        // Nothing presented is not a guess; another address is not limited.
        assert_eq!(
            access.check(now, addr("192.0.2.7"), &creds(None)),
            Verdict::Missing
        );
        assert_eq!(
            access.check(now, addr("192.0.2.7"), &creds(Some(t.reveal()))),
            Verdict::Granted { by_cookie: false }
        );
    }

    #[test]
    fn a_rotated_file_replaces_the_token_and_tells_the_sessions() {
        let dir = std::env::temp_dir().join(format!("peercam-access-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut config = Config::default();
        config.server.state_dir = Some(dir.clone());
        let access = Access::load(&config, Some(&dir)).unwrap();
        assert_eq!(access.source(), &Source::File(dir.join("token")));
        let old = access.token().unwrap();
        let old_cookie = old.cookie_value();
        // A second load (the next start) finds the same token.
        assert_eq!(
            Access::load(&config, Some(&dir)).unwrap().token(),
            Some(old.clone())
        );
        let mut sessions = access.sessions().unwrap();
        assert!(!sessions.has_changed().unwrap());
        let new = Token::generate().unwrap();
        store::replace(&dir.join("token"), &new).unwrap();
        let now = Instant::now();
        let a = addr("192.0.2.1");
        // Until the watch looks at the file, the old token still opens.
        assert_eq!(
            access.check(now, a, &creds(Some(old.reveal()))),
            Verdict::Granted { by_cookie: false }
        );
        access.refresh();
        assert_eq!(
            access.check(now, a, &creds(Some(old.reveal()))),
            Verdict::Wrong
        );
        assert!(sessions.has_changed().unwrap());
        sessions.mark_unchanged();
        let stale = Credentials {
            cookies: vec![&old_cookie],
            ..Credentials::default()
        };
        assert_eq!(access.check(now, a, &stale), Verdict::Wrong);
        assert_eq!(
            access.check(now, a, &creds(Some(new.reveal()))),
            Verdict::Granted { by_cookie: false }
        );
        // Nothing changed since: no second notice.
        access.refresh();
        assert!(!sessions.has_changed().unwrap());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_configuration_chooses_open_or_its_own_token() {
        let mut config = Config::default();
        config.auth.mode = AuthMode::None;
        assert!(!Access::in_memory(&config).unwrap().required());
        config.auth.mode = AuthMode::Token;
        config.auth.token = Some("k".repeat(40));
        let access = Access::load(&config, None).unwrap();
        assert_eq!(access.source(), &Source::Configured);
        assert_eq!(access.token().unwrap().reveal(), "k".repeat(40));
        config.auth.token = None;
        assert_eq!(
            Access::in_memory(&config).unwrap().source(),
            &Source::Memory
        );
    }
}
