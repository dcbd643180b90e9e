//! Failed attempts per client address: a wrong token costs the address one of a few allowed
//! failures, which come back one per interval. An address that has none left is refused
//! without its token even being looked at, until the next one comes back; so guessing runs
//! at a few tries a minute per address, while every other address (a person watching)
//! is untouched. IPv6 addresses count by their /64, what one host usually holds.
//!
//! Pure: time is passed in. It must not look at tokens or requests; the caller says what
//! failed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How many failures an address may have before it is refused, and how fast they come back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LimiterSettings {
    /// Failures allowed in a burst.
    pub burst: u32,
    /// Time for one allowed failure to come back.
    pub refill: Duration,
    /// Addresses remembered at most; the map never grows past this.
    pub max_addresses: usize,
}

impl Default for LimiterSettings {
    fn default() -> Self {
        LimiterSettings {
            burst: 10,
            refill: Duration::from_secs(6),
            max_addresses: 4096,
        }
    }
}

/// What an address may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allowance {
    /// Its token may be checked.
    Allowed,
    /// Refused for now; try again after this long.
    Limited(Duration),
}

/// One address's failures.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Failures still allowed, fractional while one comes back.
    left: f64,
    /// When `left` was last brought up to date.
    at: Instant,
}

/// The failure counts of every address that failed lately.
#[derive(Debug)]
pub struct FailureLimiter {
    /// The policy.
    settings: LimiterSettings,
    /// Per address (IPv6 by /64).
    buckets: HashMap<IpAddr, Bucket>,
}

/// The key an address counts under: itself for IPv4, its /64 for IPv6.
fn key(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V4(_) => addr,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
    }
}

impl FailureLimiter {
    /// A limiter with no failures recorded.
    pub fn new(settings: LimiterSettings) -> Self {
        FailureLimiter {
            settings,
            buckets: HashMap::new(),
        }
    }

    fn per_sec(&self) -> f64 {
        1.0 / self.settings.refill.as_secs_f64().max(1e-3)
    }

    fn refreshed(&self, bucket: Bucket, now: Instant) -> Bucket {
        let gained = now.saturating_duration_since(bucket.at).as_secs_f64() * self.per_sec();
        Bucket {
            left: (bucket.left + gained).min(f64::from(self.settings.burst)),
            at: now,
        }
    }

    /// Whether `addr` may try now.
    pub fn check(&self, addr: IpAddr, now: Instant) -> Allowance {
        let Some(bucket) = self.buckets.get(&key(addr)) else {
            return Allowance::Allowed;
        };
        let bucket = self.refreshed(*bucket, now);
        if bucket.left >= 1.0 {
            Allowance::Allowed
        } else {
            let wait = (1.0 - bucket.left) / self.per_sec();
            // Whole seconds, rounded up: what Retry-After can say.
            Allowance::Limited(Duration::from_secs(wait.ceil().max(1.0) as u64))
        }
    }

    /// Records a failed attempt from `addr`.
    pub fn failed(&mut self, addr: IpAddr, now: Instant) {
        let full = Bucket {
            left: f64::from(self.settings.burst),
            at: now,
        };
        let k = key(addr);
        if !self.buckets.contains_key(&k) && self.buckets.len() >= self.settings.max_addresses {
            self.forget(now);
        }
        let bucket = self.buckets.get(&k).copied().unwrap_or(full);
        let mut bucket = self.refreshed(bucket, now);
        bucket.left = (bucket.left - 1.0).max(0.0);
        self.buckets.insert(k, bucket);
    }

    /// Makes room: drops every address whose failures have all come back, and if that frees
    /// nothing, the one that failed longest ago.
    fn forget(&mut self, now: Instant) {
        let burst = f64::from(self.settings.burst);
        let per_sec = self.per_sec();
        self.buckets.retain(|_, b| {
            b.left + now.saturating_duration_since(b.at).as_secs_f64() * per_sec < burst
        });
        if self.buckets.len() >= self.settings.max_addresses {
            let oldest = self
                .buckets
                .iter()
                .min_by_key(|(_, b)| b.at)
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.buckets.remove(&k);
            }
        }
    }

    /// Addresses remembered.
    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    /// Whether no address is remembered.
    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn limiter(burst: u32, refill_secs: u64) -> FailureLimiter {
        FailureLimiter::new(LimiterSettings {
            burst,
            refill: Duration::from_secs(refill_secs),
            max_addresses: 3,
        })
    }

    #[test]
    fn an_address_is_limited_after_its_burst_and_recovers_one_at_a_time() {
        let t0 = Instant::now();
        let mut l = limiter(3, 10);
        let a = ip("192.0.2.1");
        for _ in 0..3 {
            assert_eq!(l.check(a, t0), Allowance::Allowed);
            l.failed(a, t0);
        }
        assert_eq!(l.check(a, t0), Allowance::Limited(Duration::from_secs(10)));
        assert_eq!(
            l.check(a, t0 + Duration::from_secs(4)),
            Allowance::Limited(Duration::from_secs(6))
        );
        let later = t0 + Duration::from_secs(10);
        assert_eq!(l.check(a, later), Allowance::Allowed);
        l.failed(a, later);
        assert!(matches!(l.check(a, later), Allowance::Limited(_)));
        // A long quiet spell gives the whole burst back, and no more.
        let much_later = later + Duration::from_secs(3600);
        for _ in 0..3 {
            assert_eq!(l.check(a, much_later), Allowance::Allowed);
            l.failed(a, much_later);
        }
        assert!(matches!(l.check(a, much_later), Allowance::Limited(_)));
    }

    #[test]
    fn other_addresses_are_untouched() {
        let t0 = Instant::now();
        let mut l = limiter(2, 10);
        let attacker = ip("192.0.2.1");
        for _ in 0..5 {
            l.failed(attacker, t0);
        }
        assert!(matches!(l.check(attacker, t0), Allowance::Limited(_)));
        assert_eq!(l.check(ip("192.0.2.2"), t0), Allowance::Allowed);
        assert_eq!(l.check(ip("2001:db8::1"), t0), Allowance::Allowed);
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        let t0 = Instant::now();
        let mut l = limiter(2, 10);
        l.failed(ip("2001:db8:0:1::1"), t0);
        l.failed(ip("2001:db8:0:1::2"), t0);
        assert!(matches!(
            l.check(ip("2001:db8:0:1::ffff"), t0),
            Allowance::Limited(_)
        ));
        assert_eq!(l.check(ip("2001:db8:0:2::1"), t0), Allowance::Allowed);
        l.failed(ip("::ffff:192.0.2.9"), t0);
        l.failed(ip("192.0.2.9"), t0);
        assert!(matches!(
            l.check(ip("192.0.2.9"), t0),
            Allowance::Limited(_)
        ));
    }

    #[test]
    fn memory_is_bounded_and_recovered_addresses_go_first() {
        let t0 = Instant::now();
        let mut l = limiter(2, 10);
        l.failed(ip("192.0.2.1"), t0);
        l.failed(ip("192.0.2.2"), t0 + Duration::from_secs(5));
        for _ in 0..2 {
            l.failed(ip("192.0.2.3"), t0 + Duration::from_secs(5));
        }
        // At the cap; .1 has recovered by now, so it goes and .3 stays limited.
        let t = t0 + Duration::from_secs(12);
        l.failed(ip("192.0.2.4"), t);
        assert!(l.len() <= 3);
        assert!(matches!(l.check(ip("192.0.2.3"), t), Allowance::Limited(_)));
        for i in 10..100 {
            l.failed(ip(&format!("192.0.2.{i}")), t);
            assert!(l.len() <= 3);
        }
    }
}
