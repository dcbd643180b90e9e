//! mDNS / DNS-SD on the LAN: advertising this device (`_nextrtc._tcp` and `_http._tcp`) and
//! browsing for devices (`peercam discover`).
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

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mdns_sd::{DaemonEvent, IfKind, ResolvedService, ServiceDaemon, ServiceEvent, ServiceInfo};
use serde::Serialize;

/// The service type nextRTC clients browse for.
pub const SERVICE_TYPE: &str = "_nextrtc._tcp.local.";
/// Also registered, so that generic LAN browsers list the device's page.
pub const HTTP_SERVICE_TYPE: &str = "_http._tcp.local.";
/// The signaling endpoint, advertised as `path=`.
pub const SIGNALING_PATH: &str = "/signaling";

/// Longest DNS label, in bytes (RFC 1035); instance names and host labels are cut to it.
const MAX_LABEL: usize = 63;
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
/// Time given to a browse daemon to stop; it only has to leave its multicast groups.
const BROWSE_STOP: Duration = Duration::from_secs(1);

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
    /// The TLS certificate's fingerprint as the `fp=` value, when set: see [`fingerprint_txt`].
    pub fingerprint: Option<String>,
    /// Addresses to publish; empty: every non-loopback interface address, kept up to date.
    pub addresses: Vec<IpAddr>,
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

/// Formats the list for `peercam discover`: one line per device under a header, or a
/// sentence when there is none; then, for each device with TLS, its certificate's
/// fingerprint (to compare with what the browser shows) and its plain http URL. Text from the
/// network is shown with control characters replaced, so a hostile TXT record cannot drive
/// the terminal.
pub fn format_table(found: &[FoundCamera]) -> String {
    if found.is_empty() {
        return "no cameras found\n".to_owned();
    }
    let txt = |c: &FoundCamera, key: &str| c.txt.get(key).cloned().unwrap_or_default();
    let header = ["NAME", "URL", "CONV", "TLS", "AUTH", "VERSION", "HOST"].map(str::to_owned);
    let rows: Vec<[String; 7]> = found
        .iter()
        .map(|c| {
            [
                c.name.clone(),
                c.url.clone(),
                txt(c, "conv"),
                yes_no(&txt(c, "tls")),
                yes_no(&txt(c, "auth")),
                txt(c, "ver"),
                c.host.clone(),
            ]
            .map(|cell| printable(&cell))
        })
        .collect();
    let mut widths = header.clone().map(|h| h.chars().count());
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(widths) {
            line.push_str(&format!("{cell:<width$}  "));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let secure: Vec<&FoundCamera> = found.iter().filter(|c| c.url != c.http_url).collect();
    let name_width = secure
        .iter()
        .map(|c| printable(&c.name).chars().count())
        .max()
        .unwrap_or(0);
    for (i, c) in secure.iter().enumerate() {
        if i == 0 {
            out.push('\n');
        }
        let fingerprint = c.fingerprint.as_deref().map_or_else(
            || "certificate fingerprint not advertised".to_owned(),
            |fp| format!("certificate SHA-256 {}", printable(fp)),
        );
        let name = printable(&c.name);
        out.push_str(&format!("{name:<name_width$}  {fingerprint}\n"));
        out.push_str(&format!(
            "{:<name_width$}  also {} (to watch; camera and microphone need https)\n",
            "",
            printable(&c.http_url)
        ));
    }
    out
}

fn yes_no(flag: &str) -> String {
    match flag {
        "1" => "yes",
        "0" => "no",
        _ => "?",
    }
    .to_owned()
}

fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

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

    fn found(txt: &[(&str, &str)], addresses: Vec<IpAddr>) -> FoundCamera {
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

    #[test]
    fn the_table_lines_up_and_neutralises_control_characters() {
        let a = found(
            &[
                ("conv", "porch"),
                ("tls", "0"),
                ("auth", "1"),
                ("ver", "0.1.0"),
            ],
            vec![Ipv4Addr::new(192, 0, 2, 1).into()],
        );
        let mut b = found(&[("conv", "x\u{1b}[2J")], vec![]);
        b.name = "Garage".into();
        let table = format_table(&[a, b]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        assert!(lines[0].starts_with("NAME       URL"), "{table}");
        assert!(
            lines[1].starts_with("Porch Cam  http://192.0.2.1:8080/"),
            "{table}"
        );
        assert!(
            lines[1].contains("porch") && lines[1].contains("yes"),
            "{table}"
        );
        assert!(
            lines[2].contains("x?[2J") && !table.contains('\u{1b}'),
            "{table}"
        );
        let url_column = lines[0].find("URL").unwrap();
        assert_eq!(lines[2].find("http://porch-cam.local"), Some(url_column));
        assert_eq!(format_table(&[]), "no cameras found\n");
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

    #[test]
    fn tls_cameras_show_their_fingerprint_and_plain_url() {
        let lan: IpAddr = Ipv4Addr::new(192, 0, 2, 1).into();
        let c = found(&[("tls", "1"), ("fp", "sha-256 AB:CD\u{1b}[2J")], vec![lan]);
        assert_eq!(c.url, "https://192.0.2.1:8080/");
        assert_eq!(c.http_url, "http://192.0.2.1:8080/");
        assert_eq!(c.fingerprint.as_deref(), Some("AB:CD\u{1b}[2J"));
        let json = serde_json::to_value(&c).unwrap();
        assert_eq!(json["fingerprint"], "AB:CD\u{1b}[2J");
        assert_eq!(json["http_url"], "http://192.0.2.1:8080/");
        let mut plain = found(&[("tls", "0")], vec![lan]);
        plain.name = "Garage".into();
        let table = format_table(&[c, plain]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 6, "{table}");
        assert!(
            lines[1].starts_with("Porch Cam  https://192.0.2.1:8080/"),
            "{table}"
        );
        assert_eq!(lines[3], "");
        assert_eq!(
            lines[4], "Porch Cam  certificate SHA-256 AB:CD?[2J",
            "{table}"
        );
        assert!(
            lines[5].starts_with("           also http://192.0.2.1:8080/ (to watch"),
            "{table}"
        );
        assert!(!table.contains('\u{1b}'));
    }
}
