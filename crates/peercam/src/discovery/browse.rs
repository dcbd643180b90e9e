//! Browsing for devices: the [`Browser`] that follows `_nextrtc._tcp` instances coming and
//! going, the one-shot [`browse`], and what a resolved service becomes ([`FoundCamera`]: its
//! addresses ordered, TXT keys normalised, the URL to open).
//!
//! It must not advertise and must not format output for people: `table` does that, and JSON
//! output is [`FoundCamera`]'s serde form.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use mdns_sd::{ResolvedService, ServiceDaemon, ServiceEvent};
use serde::Serialize;

use super::{fingerprint_from_txt, DiscoveryError, SERVICE_TYPE};

/// Time given to a browse daemon to stop; it only has to leave its multicast groups.
const BROWSE_STOP: Duration = Duration::from_secs(1);

/// A device that answered a browse.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FoundCamera {
    /// Instance name (`Porch Cam`).
    pub name: String,
    /// SRV target without the trailing dot (`porch-cam.local`).
    pub host: String,
    /// Its addresses, IPv4 first, routable before link-local before loopback.
    pub addresses: Vec<IpAddr>,
    /// HTTP port.
    pub port: u16,
    /// TXT entries; keys lowercased, values decoded lossily as UTF-8.
    pub txt: BTreeMap<String, String>,
    /// The URL to open: `https://` when the device advertises TLS (`tls=1`), else
    /// `http://`; then the first IPv4 address or the host, and the port.
    pub url: String,
    /// The same with `http://`, which a TLS device answers as well: enough to watch, but
    /// browsers allow camera and microphone only on https pages.
    pub http_url: String,
    /// The TLS certificate's SHA-256 fingerprint from `fp=` (uppercase hex pairs joined by
    /// colons, what browsers show), when advertised.
    pub fingerprint: Option<String>,
}

impl FoundCamera {
    /// Builds the entry from what was received; the addresses are ordered and the URL made.
    pub fn new(
        name: String,
        host: String,
        mut addresses: Vec<IpAddr>,
        port: u16,
        txt: BTreeMap<String, String>,
    ) -> FoundCamera {
        addresses.sort_by_key(|a| (address_rank(a), *a));
        addresses.dedup();
        let tls = txt.get("tls").is_some_and(|v| v == "1");
        let url = camera_url(tls, &addresses, &host, port);
        let http_url = camera_url(false, &addresses, &host, port);
        let fingerprint = txt.get("fp").map(|fp| fingerprint_from_txt(fp));
        FoundCamera {
            name,
            host,
            addresses,
            port,
            txt,
            url,
            http_url,
            fingerprint,
        }
    }

    fn from_resolved(service: &ResolvedService) -> FoundCamera {
        let mut txt = BTreeMap::new();
        for p in service.get_properties().iter() {
            let value = p.val().map(String::from_utf8_lossy).unwrap_or_default();
            // RFC 6763 §6.4: keys are case-insensitive and only a key's first occurrence
            // counts.
            txt.entry(p.key().to_ascii_lowercase())
                .or_insert_with(|| value.into_owned());
        }
        FoundCamera::new(
            instance_from_fullname(service.get_fullname(), SERVICE_TYPE),
            service.get_hostname().trim_end_matches('.').to_owned(),
            service
                .get_addresses()
                .iter()
                .map(|a| a.to_ip_addr())
                .collect(),
            service.get_port(),
            txt,
        )
    }
}

/// Sort key: IPv4 before IPv6; routable, then link-local, then loopback.
fn address_rank(addr: &IpAddr) -> (u8, u8) {
    let scope = match addr {
        a if a.is_loopback() => 2,
        IpAddr::V4(v4) if v4.is_link_local() => 1,
        IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80 => 1,
        _ => 0,
    };
    (u8::from(addr.is_ipv6()), scope)
}

/// `http(s)://<first IPv4 in addresses, else host>:<port>/`.
pub fn camera_url(tls: bool, addresses: &[IpAddr], host: &str, port: u16) -> String {
    let scheme = if tls { "https" } else { "http" };
    match addresses.iter().find(|a| a.is_ipv4()) {
        Some(v4) => format!("{scheme}://{v4}:{port}/"),
        None => format!("{scheme}://{host}:{port}/"),
    }
}

/// The instance part of `fullname` (`Porch Cam._nextrtc._tcp.local.` → `Porch Cam`), with the
/// `\.` and `\\` escapes mdns-sd uses undone. Names of another type come back whole.
pub fn instance_from_fullname(fullname: &str, service_type: &str) -> String {
    let suffix = format!(".{service_type}");
    let instance = match fullname.len().checked_sub(suffix.len()) {
        Some(cut)
            if fullname.is_char_boundary(cut) && fullname[cut..].eq_ignore_ascii_case(&suffix) =>
        {
            &fullname[..cut]
        }
        _ => fullname,
    };
    let mut out = String::with_capacity(instance.len());
    let mut chars = instance.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('\\', Some(next @ ('.' | '\\'))) => {
                out.push(next);
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

/// One change seen while browsing.
#[derive(Debug, Clone, PartialEq)]
pub enum BrowseEvent {
    /// A device answered, or its details (addresses, TXT) changed.
    Found(FoundCamera),
    /// A device said goodbye or its records expired; the instance name.
    Removed(String),
}

/// A running browse of `_nextrtc._tcp`, for callers that follow devices coming and going.
/// [`browse`] is the one-shot form.
pub struct Browser {
    daemon: ServiceDaemon,
    events: mdns_sd::Receiver<ServiceEvent>,
}

impl Browser {
    /// Starts browsing on every interface. The daemon waits on a small queue of events, so
    /// call [`Browser::next`] regularly.
    pub fn start() -> Result<Browser, DiscoveryError> {
        let daemon = ServiceDaemon::new().map_err(DiscoveryError::Daemon)?;
        match daemon.browse(SERVICE_TYPE) {
            Ok(events) => Ok(Browser { daemon, events }),
            Err(e) => {
                let _ = daemon.shutdown();
                Err(DiscoveryError::Browse(e))
            }
        }
    }

    /// The next change, waiting until `deadline`; `None` when it passes (or the daemon died).
    pub fn next(&self, deadline: Instant) -> Option<BrowseEvent> {
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.events.recv_timeout(left).ok()? {
                ServiceEvent::ServiceResolved(service) => {
                    return Some(BrowseEvent::Found(FoundCamera::from_resolved(&service)))
                }
                ServiceEvent::ServiceRemoved(service_type, fullname) => {
                    return Some(BrowseEvent::Removed(instance_from_fullname(
                        &fullname,
                        &service_type,
                    )))
                }
                _ => {}
            }
        }
    }

    /// Stops browsing and the daemon.
    pub fn stop(self) {
        // Dropping does it.
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.daemon.stop_browse(SERVICE_TYPE);
        if let Ok(rx) = self.daemon.shutdown() {
            let _ = rx.recv_timeout(BROWSE_STOP);
        }
    }
}

/// Browses `_nextrtc._tcp` for `timeout` and returns what answered, one entry per instance
/// (the latest details; instances that said goodbye meanwhile are left out), sorted by name.
pub fn browse(timeout: Duration) -> Result<Vec<FoundCamera>, DiscoveryError> {
    let deadline = Instant::now() + timeout;
    let browser = Browser::start()?;
    let mut found: HashMap<String, FoundCamera> = HashMap::new();
    while let Some(event) = browser.next(deadline) {
        match event {
            BrowseEvent::Found(camera) => {
                found.insert(camera.name.to_lowercase(), camera);
            }
            BrowseEvent::Removed(name) => {
                found.remove(&name.to_lowercase());
            }
        }
    }
    browser.stop();
    let mut found: Vec<_> = found.into_values().collect();
    found.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.host.cmp(&b.host)));
    Ok(found)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use mdns_sd::ServiceInfo;
    use std::net::{Ipv4Addr, Ipv6Addr};

    /// A found camera named `Porch Cam` on `porch-cam.local:8080`.
    pub(in crate::discovery) fn found(txt: &[(&str, &str)], addresses: Vec<IpAddr>) -> FoundCamera {
        FoundCamera::new(
            "Porch Cam".into(),
            "porch-cam.local".into(),
            addresses,
            8080,
            txt.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn instance_names_come_back_from_full_names() {
        let f = |s| instance_from_fullname(s, SERVICE_TYPE);
        assert_eq!(f("Porch Cam._nextrtc._tcp.local."), "Porch Cam");
        assert_eq!(f("Porch Cam._NEXTRTC._tcp.local."), "Porch Cam");
        assert_eq!(f(r"Pi\.4 \\ x._nextrtc._tcp.local."), r"Pi.4 \ x");
        assert_eq!(f("Pi.4._nextrtc._tcp.local."), "Pi.4");
        assert_eq!(f("odd._http._tcp.local."), "odd._http._tcp.local.");
        assert_eq!(f("é"), "é");
        assert_eq!(f("trailing\\"), "trailing\\");
    }

    #[test]
    fn resolved_services_become_found_cameras() {
        use mdns_sd::TxtProperty;
        let txt = vec![
            TxtProperty::from(("Conv", "porch")),
            TxtProperty::from(("conv", "ignored: not the first")),
            TxtProperty::from("flag"),
            TxtProperty::from(("ver", &b"0.\xff"[..])),
            TxtProperty::from(("tls", "1")),
        ];
        let lan: IpAddr = Ipv4Addr::new(192, 0, 2, 1).into();
        let resolved = ServiceInfo::new(
            SERVICE_TYPE,
            "Pi.4 Cam",
            "pi-4-cam.local.",
            &[lan][..],
            8443,
            txt,
        )
        .unwrap()
        .as_resolved_service();
        let c = FoundCamera::from_resolved(&resolved);
        assert_eq!(c.name, "Pi.4 Cam");
        assert_eq!(c.host, "pi-4-cam.local");
        assert_eq!(c.addresses, vec![lan]);
        assert_eq!(c.port, 8443);
        assert_eq!(c.url, "https://192.0.2.1:8443/");
        let txt: Vec<(&str, &str)> = c.txt.iter().map(|(k, v)| (&**k, &**v)).collect();
        assert_eq!(
            txt,
            [
                ("conv", "porch"),
                ("flag", ""),
                ("tls", "1"),
                ("ver", "0.\u{fffd}")
            ]
        );
    }

    #[test]
    fn urls_prefer_a_routable_ipv4_address() {
        let v6: IpAddr = "fe80::1".parse().unwrap();
        let lo: IpAddr = Ipv4Addr::LOCALHOST.into();
        let ll: IpAddr = Ipv4Addr::new(169, 254, 3, 4).into();
        let lan: IpAddr = Ipv4Addr::new(192, 0, 2, 1).into();
        let c = found(&[("tls", "0")], vec![v6, lo, ll, lan, lan]);
        assert_eq!(c.url, "http://192.0.2.1:8080/");
        assert_eq!(c.addresses, vec![lan, ll, lo, v6]);
        let c = found(&[("tls", "1")], vec![v6]);
        assert_eq!(c.url, "https://porch-cam.local:8080/");
        let c = found(&[], vec![Ipv6Addr::LOCALHOST.into()]);
        assert_eq!(c.url, "http://porch-cam.local:8080/");
    }

    #[test]
    fn found_cameras_serialize_for_json_output() {
        let c = found(
            &[("conv", "porch")],
            vec![Ipv4Addr::new(192, 0, 2, 1).into()],
        );
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "name": "Porch Cam",
                "host": "porch-cam.local",
                "addresses": ["192.0.2.1"],
                "port": 8080,
                "txt": {"conv": "porch"},
                "url": "http://192.0.2.1:8080/",
                "http_url": "http://192.0.2.1:8080/",
                "fingerprint": null,
            })
        );
    }
}
