//! Pure admission and flow checks for the transport: the WebSocket Origin rule and a token
//! bucket rate limiter. Time is an argument, so both are tested without sleeping.

use std::time::{Duration, Instant};

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
}
