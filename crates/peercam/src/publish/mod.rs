//! Publishing over WHIP (RFC 9725), as a client: the device sends its one encoded stream to a
//! media server (Janus, MediaMTX, LiveKit, …), which fans it out to any audience.
//!
//! ```text
//! camera loop                      media worker                 media server
//!   offerRequest from whip-N ───▶  offerer peer, as for a
//!                                  broadcast viewer
//!   ◀── offerResponse to whip-N    (candidates gathered in it)
//!   POST offer (application/sdp, Bearer token) ─────────────────▶
//!   ◀───────────────────────────────────── 201 Created, answer, Location
//!   finalize from whip-N ────────▶  ICE, DTLS, SRTP ═══ H.264 ═══▶
//!   NEGOTIATION_FAILED to whip-N ◀ (silent server, unusable answer, no connection)
//!   DELETE Location ────────────────────────────────────────────▶ (giving up, stopping)
//! ```
//!
//! The publisher is a remote peer of the camera's own member that is no member of the hub, as
//! a WHEP player is, in the other direction: the worker serves it with everything a broadcast
//! viewer gets (the shared encode, NACK/RTX, keyframe gates, the silence watch), and it does
//! not count against the viewer limit. Whatever fails ends the attempt and the next one
//! comes after a back-off; a worker that dies takes the session with it and the next worker
//! publishes again.
//!
//! `policy.rs` decides (pure, time passed in); `client.rs` is the HTTP; the camera loop's side
//! (peer messages, tasks) is `camera/publish.rs`. This file holds what they share: the
//! [`Target`], the [`Status`] shown in `/api/stats`, and the check `peercam check` runs.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use peercam_wire::config::{Config, WhipUrl};

pub mod client;
pub mod policy;

pub use client::Client;
pub use policy::{Publisher, State};

/// Where the device publishes.
#[derive(Clone)]
pub struct Target {
    /// The WHIP endpoint.
    pub url: WhipUrl,
    /// Its Bearer token, if it wants one.
    pub token: Option<String>,
}

impl Target {
    /// The target `config` names, when publishing is on.
    pub fn of(config: &Config) -> Option<Target> {
        Some(Target {
            url: config.publish.endpoint()?,
            token: config.publish.token.clone(),
        })
    }
}

impl std::fmt::Debug for Target {
    /// The token is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("url", &self.url.shown())
            .field("token", &self.token.as_ref().map(|_| "(set)"))
            .finish()
    }
}

/// The publisher as `/api/stats` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    /// `idle`, `posting`, `live` or `backing-off`.
    pub state: &'static str,
    /// The endpoint, without its query (and never the token).
    pub url: String,
    /// When the state began, seconds since the Unix epoch.
    pub since: u64,
    /// Seconds in the state so far.
    pub seconds: u64,
    /// Attempts made since the device started.
    pub attempts: u64,
    /// Why the last failed attempt ended.
    pub last_error: Option<String>,
    /// While backing off: seconds until the next attempt.
    pub retry_in: Option<u64>,
    /// When the state began (for `seconds`).
    #[serde(skip)]
    began: Instant,
    /// While backing off: when the next attempt starts (for `retry_in`).
    #[serde(skip)]
    retry_at: Option<Instant>,
}

impl Status {
    /// `publisher`'s status at `now` (`wall` being the same moment on the wall clock).
    pub fn of(publisher: &Publisher, now: Instant, wall: SystemTime) -> Status {
        let began = publisher.since();
        let since = wall
            .checked_sub(now.saturating_duration_since(began))
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        Status {
            state: publisher.state().name(),
            url: publisher.shown().to_owned(),
            since,
            seconds: 0,
            attempts: publisher.attempts(),
            last_error: publisher.last_error().map(str::to_owned),
            retry_in: None,
            began,
            retry_at: publisher.retry_at(),
        }
        .at(now)
    }

    /// This status as read at `now`: the seconds counted on.
    pub fn at(mut self, now: Instant) -> Status {
        self.seconds = now.saturating_duration_since(self.began).as_secs();
        self.retry_in = self
            .retry_at
            .map(|t| t.saturating_duration_since(now).as_secs_f64().ceil() as u64);
        self
    }
}

/// How long `peercam check` waits for the endpoint.
const CHECK_WAIT: Duration = Duration::from_secs(3);

/// What `peercam check` says about publishing: what is configured, and whether the endpoint
/// answers an `OPTIONS` (any HTTP answer shows it is reachable; nothing is published).
pub fn check(config: &Config) -> String {
    let Some(target) = Target::of(config) else {
        return "Publishing (WHIP): off".into();
    };
    let token = if target.token.is_some() {
        "with a Bearer token"
    } else {
        "without a token"
    };
    let head = format!("Publishing (WHIP) to {} {token}", target.url);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return format!("{head}: cannot check ({e})"),
    };
    let client = Client::new(target);
    match runtime.block_on(client.options(CHECK_WAIT)) {
        Ok(reply) if reply.status.is_success() => {
            format!("{head}: the endpoint answers (OPTIONS: {})", reply.status)
        }
        Ok(reply) => format!(
            "{head}: the server is reachable ({}; a WHIP endpoint may refuse OPTIONS)",
            reply.describe()
        ),
        Err(e) => format!("{head}: NOT reachable: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_shows_no_token_and_counts_from_the_state_start() {
        let t0 = Instant::now();
        let url = WhipUrl::parse("http://srv:7080/whip/endpoint/cam?key=s3cret").unwrap();
        let mut p = Publisher::new(url.shown(), t0);
        p.handle(t0, policy::Event::Begin);
        p.handle(
            t0,
            policy::Event::Offer {
                peer: "whip-1".into(),
                sdp: "v=0".into(),
            },
        );
        p.handle(
            t0,
            policy::Event::PostFailed {
                peer: "whip-1".into(),
                error: "the server answered 403 Forbidden: Unauthorized".into(),
            },
        );
        let wall = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let s = Status::of(&p, t0 + Duration::from_millis(400), wall);
        assert_eq!(s.state, "backing-off");
        assert_eq!(s.url, "http://srv:7080/whip/endpoint/cam?…");
        assert_eq!((s.since, s.seconds, s.attempts), (999_999, 0, 1));
        assert_eq!(s.retry_in, Some(1));
        let later = s.clone().at(t0 + Duration::from_millis(2500));
        assert_eq!(
            (later.seconds, later.retry_in, later.since),
            (2, Some(0), 999_999)
        );
        let json = serde_json::to_string(&s).unwrap();
        assert!(!json.contains("s3cret"), "{json}");
        let target = Target {
            url,
            token: Some("t0ken".into()),
        };
        assert!(!format!("{target:?}").contains("t0ken"));
    }

    #[test]
    fn check_says_off_and_names_an_unreachable_endpoint() {
        assert_eq!(check(&Config::default()), "Publishing (WHIP): off");
        // A port nothing listens on (bound, then released).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut config = Config::default();
        config.publish.enabled = true;
        config.publish.url = Some(format!("http://127.0.0.1:{port}/whip"));
        config.publish.token = Some("s3cret".into());
        let said = check(&config);
        assert!(said.contains("NOT reachable"), "{said}");
        assert!(
            said.contains("with a Bearer token") && !said.contains("s3cret"),
            "{said}"
        );
    }
}
