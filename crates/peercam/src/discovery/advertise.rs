//! Advertising this device: the two DNS-SD registrations and their TXT entries, the
//! [`Advertiser`] that holds the mdns-sd daemon while the device is advertised, its watcher
//! thread (re-announcing after an address removal, logging renames), and the goodbye.
//!
//! It must not browse or read what other devices publish, and must not know where the
//! advertisement's values come from (configuration, TLS): the caller fills in an
//! [`Advertisement`].

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mdns_sd::{DaemonEvent, IfKind, ServiceDaemon, ServiceInfo};

use super::{
    host_label, instance_name, DiscoveryError, HTTP_SERVICE_TYPE, SERVICE_TYPE, SIGNALING_PATH,
};

/// Longest `key=value` string in a TXT record (one length byte, RFC 6763 §6.1).
const MAX_TXT_ENTRY: usize = 255;
/// How often the advertiser's watcher looks at its stop flag; bounds how long `shutdown`
/// waits for it.
const WATCH_TICK: Duration = Duration::from_millis(100);
/// Quiet time after an address removal before re-announcing, so that an interface going
/// away (several addresses at once) causes one announcement, not one per address.
const REANNOUNCE_SETTLE: Duration = Duration::from_millis(500);
/// mdns-sd repeats each goodbye this long after the first (plus a margin for its timer).
const GOODBYE_REPEAT: Duration = Duration::from_millis(150);
/// What the device advertises.
#[derive(Debug, Clone)]
pub struct Advertisement {
    /// Instance name, e.g. `peercam` or the config's `server.name`; also gives the host name.
    pub name: String,
    /// The HTTP (and WebSocket) port.
    pub port: u16,
    /// The camera's standing conversation id, advertised as `conv=`.
    pub conversation: String,
    /// Whether the port speaks HTTPS, advertised as `tls=0|1`.
    pub tls: bool,
    /// Whether signaling needs credentials, advertised as `auth=0|1`.
    pub auth: bool,
    /// The TLS certificate's fingerprint as the `fp=` value, when set: see
    /// [`super::fingerprint_txt`].
    pub fingerprint: Option<String>,
    /// Addresses to publish; empty: every non-loopback interface address, kept up to date.
    pub addresses: Vec<IpAddr>,
}

/// The TXT entries for `ad`, in the order they are published.
pub fn txt_entries(ad: &Advertisement) -> Result<Vec<(String, String)>, DiscoveryError> {
    let flag = |b: bool| if b { "1" } else { "0" }.to_owned();
    let mut entries = vec![
        ("path".to_owned(), SIGNALING_PATH.to_owned()),
        ("conv".to_owned(), ad.conversation.clone()),
        ("ver".to_owned(), env!("CARGO_PKG_VERSION").to_owned()),
        ("tls".to_owned(), flag(ad.tls)),
        ("auth".to_owned(), flag(ad.auth)),
    ];
    if let Some(fp) = &ad.fingerprint {
        entries.push(("fp".to_owned(), fp.clone()));
    }
    for (key, value) in &entries {
        // key + '=' + value must fit behind one length byte.
        if key.len() + 1 + value.len() > MAX_TXT_ENTRY {
            return Err(DiscoveryError::Invalid(format!(
                "TXT entry {key}= is {} bytes; at most {} fit",
                value.len(),
                MAX_TXT_ENTRY - key.len() - 1
            )));
        }
    }
    Ok(entries)
}

/// The two registrations (nextRTC, HTTP) for `ad` on host `<host_label>.local.`.
fn service_infos(ad: &Advertisement) -> Result<Vec<ServiceInfo>, DiscoveryError> {
    let name = instance_name(&ad.name)?;
    let host = format!("{}.local.", host_label(&name));
    let txt = txt_entries(ad)?;
    [SERVICE_TYPE, HTTP_SERVICE_TYPE]
        .into_iter()
        .map(|service| {
            let info =
                ServiceInfo::new(service, &name, &host, &ad.addresses[..], ad.port, &txt[..])
                    .map_err(|error| DiscoveryError::Register { service, error })?;
            Ok(if ad.addresses.is_empty() {
                info.enable_addr_auto()
            } else {
                info
            })
        })
        .collect()
}

/// The running advertisement. Dropping it without [`Advertiser::shutdown`] still stops the
/// daemon, which sends one goodbye without waiting for it.
pub struct Advertiser {
    daemon: Option<ServiceDaemon>,
    /// Full names of the registered services, for unregistering.
    fullnames: Vec<String>,
    host: String,
    stop: Arc<AtomicBool>,
    watcher: Option<JoinHandle<()>>,
}

impl Advertiser {
    /// Registers both services (TXT: `path=/signaling`, `conv=`, `ver=<crate version>`,
    /// `tls=0|1`, `auth=0|1`, `fp=` when set) on host `<host_label(name)>.local.` (see the
    /// module comment for why not the machine's hostname). Returns once the registrations
    /// are queued; probing and announcing take about a second in the daemon's thread.
    pub fn start(ad: Advertisement) -> Result<Advertiser, DiscoveryError> {
        let infos = service_infos(&ad)?;
        let daemon = ServiceDaemon::new().map_err(DiscoveryError::Daemon)?;
        let mut advertiser = Advertiser {
            fullnames: infos.iter().map(|i| i.get_fullname().to_owned()).collect(),
            host: infos
                .first()
                .map(|i| i.get_hostname().trim_end_matches('.').to_owned())
                .unwrap_or_default(),
            daemon: Some(daemon.clone()),
            stop: Arc::new(AtomicBool::new(false)),
            watcher: None,
        };
        // From here on an error return drops `advertiser`, which stops the daemon.
        if !ad.addresses.iter().any(IpAddr::is_loopback) {
            daemon
                .disable_interface(vec![IfKind::LoopbackV4, IfKind::LoopbackV6])
                .map_err(DiscoveryError::Daemon)?;
        }
        // Subscribed before registering so that no event about our own services is missed.
        let events = daemon.monitor().map_err(DiscoveryError::Daemon)?;
        let tracked = ad.addresses.is_empty();
        for (info, service) in infos.iter().zip([SERVICE_TYPE, HTTP_SERVICE_TYPE]) {
            daemon
                .register(info.clone())
                .map_err(|error| DiscoveryError::Register { service, error })?;
        }
        let stop = advertiser.stop.clone();
        let watcher = std::thread::Builder::new()
            .name("mdns-watch".into())
            .spawn(move || watch(daemon, events, infos, tracked, stop))
            .map_err(|e| DiscoveryError::Daemon(mdns_sd::Error::Msg(e.to_string())))?;
        advertiser.watcher = Some(watcher);
        log::info!(
            "mDNS: advertising {:?} ({SERVICE_TYPE}, {HTTP_SERVICE_TYPE}) on {}:{}",
            ad.name,
            advertiser.host,
            ad.port
        );
        Ok(advertiser)
    }

    /// The host name in the SRV records, without the trailing dot (`porch-cam.local`).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Sends the goodbye (unregisters both services) and waits up to `within` for it to go
    /// out, including the daemon's repeat, then stops the daemon.
    pub fn shutdown(mut self, within: Duration) {
        let deadline = Instant::now() + within;
        self.stop_watcher();
        let Some(daemon) = self.daemon.take() else {
            return;
        };
        let pending: Vec<_> = self
            .fullnames
            .iter()
            .filter_map(|name| match daemon.unregister(name) {
                Ok(rx) => Some((name, rx)),
                Err(e) => {
                    log::warn!("mDNS: unregistering {name}: {e}");
                    None
                }
            })
            .collect();
        let mut all_sent = !pending.is_empty();
        for (name, rx) in pending {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Err(e) = rx.recv_timeout(left) {
                log::warn!("mDNS: no confirmation of the goodbye for {name}: {e}");
                all_sent = false;
            }
        }
        // Stopping the daemon now would drop the scheduled repeat of the goodbye.
        std::thread::sleep(GOODBYE_REPEAT.min(deadline.saturating_duration_since(Instant::now())));
        match daemon.shutdown() {
            Ok(rx) => {
                // The daemon exits promptly once asked; the wait only keeps its last packets
                // from racing process exit. At least a moment even when `within` is spent.
                let left = deadline.saturating_duration_since(Instant::now());
                let _ = rx.recv_timeout(left.max(Duration::from_millis(50)));
            }
            Err(e) => log::debug!("mDNS: stopping the daemon: {e}"),
        }
        if all_sent {
            log::info!("mDNS: goodbye sent for {:?}", self.fullnames);
        }
    }

    fn stop_watcher(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(watcher) = self.watcher.take() {
            // The watcher only logs and re-registers; a panic there must not stop shutdown.
            let _ = watcher.join();
        }
    }
}

impl Drop for Advertiser {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(daemon) = self.daemon.take() {
            // The daemon's own cleanup sends the goodbye once; nobody waits here.
            let _ = daemon.shutdown();
        }
    }
}

/// The advertiser's companion thread: logs what the daemon reports about our services and
/// re-announces after an address removal (see the module comment). Ends when told to stop
/// or when the daemon goes away.
fn watch(
    daemon: ServiceDaemon,
    events: mdns_sd::Receiver<DaemonEvent>,
    infos: Vec<ServiceInfo>,
    tracked: bool,
    stop: Arc<AtomicBool>,
) {
    let mut reannounce_at: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        match events.recv_timeout(WATCH_TICK) {
            Ok(DaemonEvent::IpAdd(ip)) if tracked => {
                log::info!("mDNS: address {ip} added; announced")
            }
            Ok(DaemonEvent::IpDel(ip)) => {
                log::info!("mDNS: address {ip} removed");
                if tracked {
                    reannounce_at = Some(Instant::now() + REANNOUNCE_SETTLE);
                }
            }
            Ok(DaemonEvent::NameChange(change)) => log::warn!(
                "mDNS: name conflict on {}: {} is now published as {}",
                change.intf_name,
                change.original,
                change.new_name
            ),
            Ok(DaemonEvent::Error(e)) => log::warn!("mDNS: {e}"),
            Ok(_) => {}
            Err(_) if events.is_disconnected() => break,
            Err(_) => {}
        }
        if reannounce_at.is_some_and(|at| Instant::now() >= at) {
            reannounce_at = None;
            for info in &infos {
                if let Err(e) = daemon.register(info.clone()) {
                    log::warn!("mDNS: re-announcing {}: {e}", info.get_fullname());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{fingerprint_from_txt, fingerprint_txt};
    use super::*;
    use std::net::Ipv4Addr;

    fn ad() -> Advertisement {
        Advertisement {
            name: "Porch Cam".into(),
            port: 8080,
            conversation: "porch".into(),
            tls: false,
            auth: true,
            fingerprint: None,
            addresses: Vec::new(),
        }
    }

    #[test]
    fn txt_carries_the_protocol_keys_in_order() {
        let entries = txt_entries(&ad()).unwrap();
        let version = env!("CARGO_PKG_VERSION");
        let expected = [
            ("path", "/signaling"),
            ("conv", "porch"),
            ("ver", version),
            ("tls", "0"),
            ("auth", "1"),
        ];
        let entries: Vec<(&str, &str)> = entries
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(entries, expected);
    }

    #[test]
    fn txt_adds_the_fingerprint_only_when_set() {
        let mut a = ad();
        a.tls = true;
        a.fingerprint = Some("sha-256 AB:CD".into());
        let entries = txt_entries(&a).unwrap();
        assert!(entries.contains(&("tls".into(), "1".into())));
        assert_eq!(
            entries.last().unwrap(),
            &("fp".into(), "sha-256 AB:CD".into())
        );
        assert!(!txt_entries(&ad()).unwrap().iter().any(|(k, _)| k == "fp"));
    }

    #[test]
    fn txt_entries_must_fit_one_length_byte() {
        let mut a = ad();
        a.conversation = "c".repeat(250); // "conv=" + 250 = 255: fits exactly
        assert!(txt_entries(&a).is_ok());
        a.conversation.push('c');
        let e = txt_entries(&a).unwrap_err().to_string();
        assert!(e.contains("conv="), "{e}");
    }

    #[test]
    fn service_infos_describe_both_types_on_one_host() {
        let infos = service_infos(&ad()).unwrap();
        assert_eq!(infos.len(), 2);
        assert_eq!(infos[0].get_fullname(), "Porch Cam._nextrtc._tcp.local.");
        assert_eq!(infos[1].get_fullname(), "Porch Cam._http._tcp.local.");
        for info in &infos {
            assert_eq!(info.get_hostname(), "porch-cam.local.");
            assert_eq!(info.get_port(), 8080);
            assert!(info.is_addr_auto());
            assert_eq!(info.get_property_val_str("path"), Some("/signaling"));
            assert_eq!(info.get_property_val_str("conv"), Some("porch"));
        }
        let mut fixed = ad();
        fixed.addresses = vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))];
        let infos = service_infos(&fixed).unwrap();
        assert!(!infos[0].is_addr_auto());
        assert_eq!(infos[0].get_addresses_v4().len(), 1);
    }

    #[test]
    fn fingerprints_travel_as_sha_256_values() {
        let fp = "AB:CD:EF";
        assert_eq!(fingerprint_txt(fp), "sha-256 AB:CD:EF");
        assert_eq!(fingerprint_from_txt(&fingerprint_txt(fp)), fp);
        assert_eq!(fingerprint_from_txt("SHA-256 AB:CD"), "AB:CD");
        assert_eq!(fingerprint_from_txt("sha-512 AB"), "sha-512 AB");
        assert_eq!(fingerprint_from_txt("AB:CD"), "AB:CD");
        // A full SHA-256 fingerprint fits a TXT entry with room to spare.
        let full = vec!["AB"; 32].join(":");
        let mut a = ad();
        a.fingerprint = Some(fingerprint_txt(&full));
        let entries = txt_entries(&a).unwrap();
        let (_, value) = entries.iter().find(|(k, _)| k == "fp").unwrap();
        assert_eq!(value.len(), 103);
    }
}
