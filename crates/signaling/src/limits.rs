//! Pure admission and flow checks for the transport: the WebSocket Origin rule, a token
//! bucket rate limiter and the liveness rule for silent peers. Time is an argument, so all
//! are tested without sleeping.

use std::time::{Duration, Instant};

/// Transport limits. Defaults suit a Raspberry Pi serving a household.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest accepted text frame, bytes (SDPs are a few KiB; 64 KiB leaves room).
    pub max_message_bytes: usize,
    /// Messages queued per member before it counts as too slow and is dropped.
    pub send_queue: usize,
    /// Sustained messages per second a connection may send.
    pub rate_per_sec: f64,
    /// Burst a connection may send at once (a browser's candidate burst fits easily).
    pub rate_burst: u32,
    /// Refused messages in a row before a flooding connection is closed.
    pub max_strikes: u32,
    /// Open WebSocket connections; the next gets `SERVER_BUSY`.
    pub max_connections: usize,
    /// Delay before the first nextRTC `ping` (nextRTC: 1 s).
    pub first_ping: Duration,
    /// Period of nextRTC `ping`s (nextRTC: 3 s).
    pub ping_interval: Duration,
    /// Silence after which a WebSocket Ping is sent to check the peer is alive.
    pub keepalive_after: Duration,
    /// Silence after which the peer is taken for dead and counted as `left`.
    pub idle_timeout: Duration,
    /// Longest a single write may stall before the connection is dropped.
    pub write_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 64 * 1024,
            send_queue: 256,
            rate_per_sec: 50.0,
            rate_burst: 200,
            max_strikes: 100,
            max_connections: 1000,
            first_ping: Duration::from_secs(1),
            ping_interval: Duration::from_secs(3),
            keepalive_after: Duration::from_secs(9),
            idle_timeout: Duration::from_secs(24),
            write_timeout: Duration::from_secs(10),
        }
    }
}

/// Whether a WebSocket upgrade with this `Origin` may proceed.
///
/// - no `Origin` header: a non-browser client (curl, a native app), allowed;
/// - same origin: the origin's `host[:port]` equals the request's `Host`;
/// - an origin listed in `allowed` (exact match, case-insensitive, `*` allows all).
pub fn origin_allowed(origin: Option<&str>, host: Option<&str>, allowed: &[String]) -> bool {
    let Some(origin) = origin else {
        return true;
    };
    let origin = origin.trim().trim_end_matches('/');
    if allowed
        .iter()
        .any(|a| a == "*" || a.trim_end_matches('/').eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let Some(authority) = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
    else {
        // "null" (file://, sandboxed frames) and anything unparsable.
        return false;
    };
    host.is_some_and(|h| h.trim().eq_ignore_ascii_case(authority))
}

/// A token bucket: `rate` messages per second on average, bursts up to `burst`.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
    /// Messages refused since the last one accepted.
    strikes: u32,
}

/// What to do with one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the limit.
    Allow,
    /// Over the limit: drop it; `first` says whether this starts a run of refusals (worth
    /// one error reply; replying to every refused message would just double the flood).
    Refuse { first: bool },
    /// Refused so many times in a row that the connection should be closed.
    Disconnect,
}

impl RateLimiter {
    /// A full bucket at `now`.
    pub fn new(rate: f64, burst: u32, now: Instant) -> Self {
        RateLimiter {
            rate,
            burst: burst as f64,
            tokens: burst as f64,
            last: now,
            strikes: 0,
        }
    }

    /// Accounts one message arriving at `now`; `max_strikes` refusals in a row disconnect.
    pub fn check(&mut self, now: Instant, max_strikes: u32) -> Verdict {
        let elapsed = now.saturating_duration_since(self.last);
        self.last = now;
        self.tokens = (self.tokens + elapsed.as_secs_f64() * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.strikes = 0;
            return Verdict::Allow;
        }
        self.strikes += 1;
        if self.strikes > max_strikes {
            Verdict::Disconnect
        } else {
            Verdict::Refuse {
                first: self.strikes == 1,
            }
        }
    }

    /// How long until one more message would be allowed (for tests and logs).
    pub fn wait_time(&self) -> Duration {
        if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.rate)
        }
    }
}

/// What a connection does on a ping tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    /// The peer was probed and stayed silent past the idle timeout: take it for dead.
    Dead,
    /// Send the nextRTC `ping`; with `probe`, a WebSocket Ping too.
    Ping {
        /// Also send a WebSocket Ping, which a live client answers by itself.
        probe: bool,
    },
}

/// A peer's silence, checked on each ping tick. A peer is taken for dead only after it was
/// probed with a WebSocket Ping and stayed silent past the idle timeout: a tick that comes
/// late (a busy machine) must not drop a quiet, live peer that was never asked.
#[derive(Debug, Clone)]
pub struct Liveness {
    last_heard: Instant,
    probed: bool,
    keepalive_after: Duration,
    ping_interval: Duration,
    idle_timeout: Duration,
}

impl Liveness {
    /// A peer just heard from, with the server's keep-alive settings.
    pub fn new(
        now: Instant,
        keepalive_after: Duration,
        ping_interval: Duration,
        idle_timeout: Duration,
    ) -> Self {
        Liveness {
            last_heard: now,
            probed: false,
            keepalive_after,
            ping_interval,
            idle_timeout,
        }
    }

    /// Any frame from the peer, a Pong included.
    pub fn heard(&mut self, now: Instant) {
        self.last_heard = now;
        self.probed = false;
    }

    /// The tick's action. Probes once the silence reaches `keepalive_after`, or earlier when
    /// the next tick could otherwise find the peer past the idle timeout unasked.
    pub fn tick(&mut self, now: Instant) -> Tick {
        let idle = now.saturating_duration_since(self.last_heard);
        if self.probed && idle >= self.idle_timeout {
            return Tick::Dead;
        }
        let probe = idle >= self.keepalive_after || idle + self.ping_interval >= self.idle_timeout;
        self.probed |= probe;
        Tick::Ping { probe }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn origin_rules() {
        let none = allowed(&[]);
        assert!(origin_allowed(None, Some("cam.local:8080"), &none));
        assert!(origin_allowed(
            Some("http://cam.local:8080"),
            Some("cam.local:8080"),
            &none
        ));
        assert!(origin_allowed(
            Some("https://CAM.local:8080/"),
            Some("cam.local:8080"),
            &none
        ));
        assert!(!origin_allowed(
            Some("http://evil.example"),
            Some("cam.local:8080"),
            &none
        ));
        assert!(!origin_allowed(
            Some("http://cam.local:9090"),
            Some("cam.local:8080"),
            &none
        ));
        assert!(!origin_allowed(Some("null"), Some("cam.local"), &none));
        assert!(!origin_allowed(Some("http://cam.local"), None, &none));
        let list = allowed(&["https://app.example"]);
        assert!(origin_allowed(
            Some("https://app.example"),
            Some("cam.local"),
            &list
        ));
        assert!(!origin_allowed(
            Some("http://app.example"),
            Some("cam.local"),
            &list
        ));
        assert!(origin_allowed(
            Some("http://anything"),
            None,
            &allowed(&["*"])
        ));
    }

    #[test]
    fn bucket_allows_burst_then_rate() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(10.0, 5, t0);
        for _ in 0..5 {
            assert_eq!(r.check(t0, 3), Verdict::Allow);
        }
        assert_eq!(r.check(t0, 3), Verdict::Refuse { first: true });
        assert_eq!(r.check(t0, 3), Verdict::Refuse { first: false });
        assert!(r.wait_time() > Duration::ZERO);
        // 100 ms later one token is back.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(r.check(t1, 3), Verdict::Allow);
        assert_eq!(r.check(t1, 3), Verdict::Refuse { first: true });
    }

    #[test]
    fn a_sustained_flood_disconnects() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(1.0, 1, t0);
        assert_eq!(r.check(t0, 2), Verdict::Allow);
        assert_eq!(r.check(t0, 2), Verdict::Refuse { first: true });
        assert_eq!(r.check(t0, 2), Verdict::Refuse { first: false });
        assert_eq!(r.check(t0, 2), Verdict::Disconnect);
    }

    fn liveness(now: Instant, idle_secs: u64) -> Liveness {
        let s = Duration::from_secs;
        Liveness::new(now, s(9).min(s(idle_secs) / 3), s(3), s(idle_secs))
    }

    #[test]
    fn a_silent_peer_is_dead_only_after_a_probe() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut l = liveness(t0, 24);
        assert_eq!(l.tick(at(1_000)), Tick::Ping { probe: false });
        assert_eq!(l.tick(at(4_000)), Tick::Ping { probe: false });
        assert_eq!(l.tick(at(10_000)), Tick::Ping { probe: true });
        assert_eq!(l.tick(at(22_000)), Tick::Ping { probe: true });
        assert_eq!(l.tick(at(25_000)), Tick::Dead);
    }

    #[test]
    fn an_answering_peer_stays() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut l = liveness(t0, 4);
        for tick in 0..20u64 {
            let now = at(1_000 + tick * 3_000);
            assert_ne!(l.tick(now), Tick::Dead, "tick {tick}");
            // Its Pong comes back a little later.
            l.heard(now + Duration::from_millis(50));
        }
    }

    #[test]
    fn a_late_tick_does_not_drop_a_peer_never_probed() {
        // Idle timeout 4 s, ticks every 3 s: heard 10 ms after connecting, the first tick
        // (1 s) finds 990 ms of silence, too little to probe. The next tick is due at 4 s,
        // when 3.99 s would still be fine, but it comes 50 ms late.
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut l = liveness(at(10), 4);
        assert_eq!(l.tick(at(1_000)), Tick::Ping { probe: false });
        assert_eq!(l.tick(at(4_050)), Tick::Ping { probe: true });
        // Probed and still silent at the next tick: dead.
        assert_eq!(l.tick(at(7_050)), Tick::Dead);
    }
}
