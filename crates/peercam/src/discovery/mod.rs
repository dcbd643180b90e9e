//! mDNS / DNS-SD on the LAN: advertising this device (`_nextrtc._tcp` and `_http._tcp`) and
//! browsing for devices (`peercam discover`, and the other cameras the page lists).
//!
//! Owns the mdns-sd daemons it starts: an [`Advertiser`] holds one for as long as the device
//! is advertised, a browse holds one for its duration. Everything here is blocking and
//! thread-based (mdns-sd runs its own thread), so async callers use `spawn_blocking`. It must
//! not know about configuration files, signaling or the camera: the caller fills in an
//! [`Advertisement`].
//!
//! Behaviour worth knowing, checked against mdns-sd 0.19:
//!
//! - **Host name.** The SRV target is `<label>.local.` where `<label>` is the instance name
//!   made hostname-safe ([`host_label`]: "Porch Cam" → `porch-cam`), not the machine's
//!   hostname. Many boards keep the image's hostname (every Pi is `raspberrypi`), while the
//!   instance name is what the owner configured; and when avahi runs on the same board it owns
//!   `<hostname>.local`, so a second stack publishing that name would fight over it whenever
//!   their address sets differ. Where the two names do coincide, mdns-sd's probe accepts a
//!   peer's answer that carries one of our own addresses and avahi accepts records equal to
//!   its own, so the same addresses are simply published twice (tested). On a real conflict
//!   mdns-sd renames ours (`porch-cam-2.local`, instance `Porch Cam (2)`) and the advertiser
//!   logs the change.
//! - **Addresses.** With [`Advertisement::addresses`] empty the services use mdns-sd's
//!   `enable_addr_auto`: the daemon checks the interfaces every 5 s, adds a new address to the
//!   services and announces it on that interface at once, and drops a vanished address from
//!   its answers. It does not announce after a removal, so peers would keep the stale record
//!   for its TTL (120 s); the advertiser therefore re-registers on the daemon's `IpDel` event,
//!   which re-announces the remaining addresses with the cache-flush bit, and peers drop the
//!   stale record within a second. Loopback interfaces are left out: 127.0.0.1 means nothing
//!   to another machine, and a browse on the device itself still sees it through the LAN
//!   interface (multicast loop is on). Explicit addresses are published as given, on the
//!   interfaces whose subnet contains them, and are not tracked.
//! - **Goodbye.** [`Advertiser::shutdown`] unregisters both services, which sends records with
//!   TTL 0 on every interface and repeats them 120 ms later; it waits for both before stopping
//!   the daemon, so browsers drop the device within about a second (RFC 6762 §10.1) instead
//!   of after the TTL (75 minutes for the PTR record).
//! - **Sharing port 5353.** mdns-sd binds `0.0.0.0:5353` and `[::]:5353` with `SO_REUSEADDR`
//!   and `SO_REUSEPORT`. avahi-daemon (like systemd-resolved) binds without `SO_REUSEADDR`
//!   first and sets it right after, so when avahi starts first (as at boot) both bind quietly;
//!   when avahi starts second its plain bind fails, it logs "Detected another IPv4 mDNS stack
//!   running on this host" and binds again with `SO_REUSEADDR`. Either way each socket gets
//!   its own copy of every multicast packet: avahi resolves this device and sees its goodbye,
//!   and a browse here sees what avahi publishes (`tests/discovery_netns.rs` checks this with
//!   avahi 0.8). Unicast to port 5353 reaches only one of the sockets, which does not matter
//!   here: mdns-sd never asks for unicast answers (no QU bit), and its only unicast replies go
//!   to legacy queriers' own ports.
//!
//! This module holds what both sides share (the service type, names, the `fp=` form, the
//! error) and the public API. Advertising is in `advertise`, browsing in `browse`, and the
//! text `peercam discover` prints in `table`.

mod advertise;
mod browse;
mod neighbours;
mod table;

pub use advertise::{txt_entries, Advertisement, Advertiser};
pub use browse::{browse, camera_url, instance_from_fullname, BrowseEvent, Browser, FoundCamera};
pub use neighbours::{Neighbourhood, Neighbours};

/// This machine's interface addresses, for the links by address a person is given; empty
/// when they cannot be read.
pub fn lan_addresses() -> Vec<std::net::IpAddr> {
    if_addrs::get_if_addrs()
        .map(|ifaces| ifaces.iter().map(|i| i.ip()).collect())
        .unwrap_or_default()
}
pub use table::format_table;

/// The service type nextRTC clients browse for.
pub const SERVICE_TYPE: &str = "_nextrtc._tcp.local.";
/// Also registered, so that generic LAN browsers list the device's page.
pub const HTTP_SERVICE_TYPE: &str = "_http._tcp.local.";
/// The signaling endpoint, advertised as `path=`.
pub const SIGNALING_PATH: &str = "/signaling";

/// Longest DNS label, in bytes (RFC 1035); instance names and host labels are cut to it.
const MAX_LABEL: usize = 63;

/// What went wrong starting or running discovery.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The advertisement cannot be expressed in DNS-SD (empty name, TXT entry too long).
    #[error("invalid advertisement: {0}")]
    Invalid(String),
    /// The mDNS daemon could not be started (no thread, no socket).
    #[error("starting the mDNS daemon: {0}")]
    Daemon(mdns_sd::Error),
    /// The daemon refused a registration.
    #[error("registering {service}: {error}")]
    Register {
        /// The service type that was refused.
        service: &'static str,
        /// What mdns-sd said.
        error: mdns_sd::Error,
    },
    /// The daemon refused to browse.
    #[error("browsing {SERVICE_TYPE}: {0}")]
    Browse(mdns_sd::Error),
}

/// The `fp=` value for a SHA-256 fingerprint in uppercase hex pairs joined by colons:
/// `sha-256 AB:CD:…`, the form of SDP's `a=fingerprint` (RFC 8122), which names its hash so
/// that another one can follow. 103 bytes, well within a TXT entry.
pub fn fingerprint_txt(sha256: &str) -> String {
    format!("sha-256 {sha256}")
}

/// The fingerprint in an `fp=` value: the hex after `sha-256 `, or the whole value when it
/// names no hash this version knows.
pub fn fingerprint_from_txt(value: &str) -> String {
    match value.split_once(' ') {
        Some((hash, hex)) if hash.eq_ignore_ascii_case("sha-256") => hex.trim().to_owned(),
        _ => value.to_owned(),
    }
}

/// The instance name as published: trimmed, cut to one DNS label at a character boundary.
pub fn instance_name(name: &str) -> Result<String, DiscoveryError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(DiscoveryError::Invalid("the instance name is empty".into()));
    }
    let mut end = name.len().min(MAX_LABEL);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    Ok(name[..end].trim_end().to_owned())
}

/// A hostname-safe label for `name`: ASCII letters and digits lowercased, every other run of
/// characters one `-`, at most 63 bytes; `peercam` when nothing is left.
pub fn host_label(name: &str) -> String {
    let mut label = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            label.push(c.to_ascii_lowercase());
        } else if !label.is_empty() && !label.ends_with('-') {
            label.push('-');
        }
    }
    label.truncate(MAX_LABEL);
    let label = label.trim_end_matches('-');
    if label.is_empty() {
        "peercam".to_owned()
    } else {
        label.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_names_are_trimmed_and_cut_at_a_char_boundary() {
        assert_eq!(instance_name("  Porch Cam ").unwrap(), "Porch Cam");
        assert!(instance_name(" \t").is_err());
        let long = "é".repeat(40); // 80 bytes
        let cut = instance_name(&long).unwrap();
        assert!(cut.len() <= 63 && long.starts_with(&cut));
        assert_eq!(cut.chars().count(), 31);
    }

    #[test]
    fn host_labels_are_hostname_safe() {
        assert_eq!(host_label("Porch Cam"), "porch-cam");
        assert_eq!(host_label("peercam"), "peercam");
        assert_eq!(host_label("  Küche (2) / Pi.4 "), "k-che-2-pi-4");
        assert_eq!(host_label("---"), "peercam");
        assert_eq!(host_label("日本"), "peercam");
        let long = host_label(&"ab-".repeat(40));
        assert!(long.len() <= 63 && !long.ends_with('-'), "{long}");
    }
}
