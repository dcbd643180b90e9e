//! The appliance around the [`Device`]: the start-up order (signal handlers, port, TLS
//! identity, camera and mDNS advertiser side by side, `READY=1`), serving, and the shutdown
//! to one deadline (`STOPPING=1`, the camera's broadcast ended, sockets drained, the mDNS
//! goodbye).
//!
//! It must not handle signals or check health itself (`signals`, `health`), and must not
//! reach into the device's parts beyond [`Device`]'s API and its public fields.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::{timeout, timeout_at, Instant};

use super::health::{health_loop, probe_address, Probe};
use super::signals::spawn_signal_handler;
use super::{Device, ServiceError, SHUTDOWN_LIMIT};
use crate::access::link::link;
use crate::access::Access;
use crate::camera::CameraError;
use crate::config::Config;
use crate::discovery::{Advertisement, Advertiser};
use crate::systemd::Notifier;
use crate::tls::Identity;
use peercam_wire::Capture;

/// Time given to HTTP requests in flight to finish once accepting has stopped; short, as no
/// request of this service takes long (WebSockets are handled apart, below).
const HTTP_DRAIN: Duration = Duration::from_millis(250);

/// Time given to the mDNS goodbye (sent, then repeated by the responder ~120 ms later).
const GOODBYE_TIME: Duration = Duration::from_millis(600);

/// Margin kept between the end of the graceful steps and [`SHUTDOWN_LIMIT`], for the
/// runtime's own teardown.
const EXIT_MARGIN: Duration = Duration::from_millis(250);

/// Runs the appliance until SIGTERM or SIGINT: see [`crate::service`] for the order of
/// things. With `camera.enabled = false` it serves signaling only.
pub async fn run(config: Config) -> Result<(), ServiceError> {
    let started = std::time::Instant::now();
    let notifier = Notifier::from_env();
    notifier.status("starting");
    let (stop_tx, stop_rx) = watch::channel(false);
    // Installed first, so a SIGTERM during start-up is a clean stop and not a kill.
    spawn_signal_handler(stop_tx)?;

    let listener = TcpListener::bind(config.server.listen)
        .await
        .map_err(|error| ServiceError::Bind {
            addr: config.server.listen,
            error,
        })?;
    let local = listener.local_addr().map_err(|error| ServiceError::Bind {
        addr: config.server.listen,
        error,
    })?;

    let tls = match tls_settings(&config) {
        Some(settings) => Some(
            tokio::task::spawn_blocking(move || Identity::load(&settings))
                .await
                .map_err(|e| ServiceError::Task(e.to_string()))?
                .map_err(ServiceError::Tls)?,
        ),
        None => None,
    };
    let fingerprint = tls.as_ref().map(|t| t.fingerprint().to_owned());
    let access = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || Access::load(&config, state_dir(&config).as_deref()))
            .await
            .map_err(|e| ServiceError::Task(e.to_string()))?
            .map_err(ServiceError::Access)?
    };

    let ad = match advertisement(&config, local, fingerprint.as_deref(), access.required()) {
        Some(ad) if config.discovery.enabled => Some(ad),
        Some(_) => None,
        None => {
            if config.discovery.enabled {
                log::info!("not advertised on the LAN: listening on loopback only");
            }
            None
        }
    };
    let advertising = ad.map(|ad| tokio::task::spawn_blocking(move || Advertiser::start(ad)));
    let device = {
        let config = config.clone();
        let access = access.clone();
        tokio::task::spawn_blocking(move || build_device(&config, tls.as_ref(), access))
    };
    let mut device = device
        .await
        .map_err(|e| ServiceError::Task(e.to_string()))??;
    let advertiser = match advertising {
        None => None,
        Some(task) => match task.await {
            Ok(Ok(advertiser)) => Some(advertiser),
            Ok(Err(e)) => {
                // The camera still works by address; a missing LAN name is not worth a
                // restart loop.
                log::error!("not advertised on the LAN: {e}");
                None
            }
            Err(e) => {
                log::error!("not advertised on the LAN: {e}");
                None
            }
        },
    };

    if advertiser.is_some() {
        // The page lists the other cameras that answer on the LAN.
        device.follow_neighbours(&config.server.name);
    }

    let with_tls = fingerprint.is_some();
    let url = link(&config.server.name, local, with_tls, None);
    let advertised = match &advertiser {
        Some(a) => format!(", advertised as {:?} on {}", config.server.name, a.host()),
        None => String::new(),
    };
    // A signal during start-up: go straight to stopping, never having been ready.
    if !*stop_rx.borrow() {
        notifier.ready(&format!("serving {url}{advertised}"));
    }
    // The one line that shows the token: the owner's link, as notebook servers print it.
    let token = access.token();
    let addresses = crate::discovery::lan_addresses();
    let by_address = |token| crate::access::link::by_address(local, with_tls, token, &addresses);
    match &token {
        Some(token) => log::info!(
            "open {} to watch{} (the link carries the camera's access token; `peercam token` \
             prints it again)",
            link(&config.server.name, local, with_tls, Some(token)),
            or_by_address(&by_address(Some(token)))
        ),
        None => log::warn!(
            "auth.mode = \"none\": anyone who can reach port {} can watch the camera",
            local.port()
        ),
    }
    show_qr_in_terminal(
        &by_address(token.as_ref()),
        &link(&config.server.name, local, with_tls, token.as_ref()),
    );
    log::info!(
        conversation = config.camera.conversation.as_str(),
        listen:% = local,
        startup_ms = started.elapsed().as_millis() as u64;
        "peercam {} ready: {url}{} (signaling at /signaling){advertised}",
        env!("CARGO_PKG_VERSION"),
        or_by_address(&by_address(None))
    );
    if let Some(fingerprint) = &fingerprint {
        log::info!("https on {local}, certificate SHA-256 {fingerprint}");
    }

    let health = tokio::spawn(health_loop(
        notifier.clone(),
        Probe {
            addr: probe_address(local),
            access: device.access.clone(),
        },
        device.camera.as_ref().map(|c| c.stats().clone()),
        Duration::from_secs(config.camera.stall_timeout_secs),
        device.signaling.clone(),
        url.clone(),
        stop_rx.clone(),
    ));

    // Stopping: no ping may follow STOPPING=1, so the health loop ends first.
    let begin_stopping = || {
        health.abort();
        notifier.stopping("stopping");
        log::info!("stopping");
        Instant::now()
    };
    let mut shutdown_started = None;
    let served = {
        let mut stop = stop_rx.clone();
        let mut serving = std::pin::pin!(device.serve(listener, async move {
            let _ = stop.wait_for(|stop| *stop).await;
        }));
        let mut stop = stop_rx.clone();
        tokio::select! {
            served = &mut serving => served,
            _ = stop.wait_for(|stop| *stop) => {
                shutdown_started = Some(begin_stopping());
                // Accepting stopped with the signal; requests in flight get a moment.
                timeout(HTTP_DRAIN, serving).await.unwrap_or(Ok(()))
            }
        }
    };
    // Serving ended on its own (an error): stop all the same.
    let shutdown_started = shutdown_started.unwrap_or_else(begin_stopping);

    let goodbye = advertiser
        .map(|advertiser| tokio::task::spawn_blocking(move || advertiser.shutdown(GOODBYE_TIME)));
    // The goodbye and the device's shutdown run side by side, to one deadline.
    let deadline = shutdown_started + SHUTDOWN_LIMIT.saturating_sub(EXIT_MARGIN);
    device
        .shutdown(deadline.saturating_duration_since(Instant::now()))
        .await;
    if let Some(goodbye) = goodbye {
        if timeout_at(deadline, goodbye).await.is_err() {
            log::warn!("mDNS goodbye did not finish in time");
        }
    }
    log::info!("stopped in {} ms", shutdown_started.elapsed().as_millis());
    served.map_err(ServiceError::Serve)
}

/// Run by hand in a terminal (not under systemd, whose journal is no terminal): the link as a
/// QR code, for a phone to read off the screen; the first of the links `by_address` when
/// there are any (phones often do not resolve `.local`), else `link`.
fn show_qr_in_terminal(by_address: &[String], link: &str) {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return;
    }
    let link = by_address.first().map_or(link, String::as_str);
    if let Some(code) = crate::share::qr_text(link) {
        eprintln!("{code}\n{link}");
    }
}

/// `, or by address: LINK, LINK` for the links by address (a device listening on every
/// address: its main link is by its `.local` name, which some phones and machines do not
/// resolve); empty when there are none.
fn or_by_address(links: &[String]) -> String {
    if links.is_empty() {
        String::new()
    } else {
        format!(", or by address: {}", links.join(", "))
    }
}

/// Builds the device and starts its camera. Blocking: the encoder probe may run a
/// two-frame trial and the camera prepares its DTLS certificate.
fn build_device(
    config: &Config,
    tls: Option<&Identity>,
    access: Arc<Access>,
) -> Result<Device, ServiceError> {
    let mut device = Device::with_access(config, access);
    if let Some(identity) = tls {
        device.enable_tls(identity);
    }
    if config.camera.enabled {
        let program = crate::install::this_media_program().map_err(|e| {
            ServiceError::Camera(CameraError::Pipeline(format!(
                "finding the media program ({}): {e}",
                crate::install::MEDIA_PROGRAM
            )))
        })?;
        device.start_camera(config, Capture::Select(config.camera.clone()), &program)?;
    } else if config.publish.enabled {
        log::warn!("publish.enabled is set but the camera is off: nothing is published");
    }
    Ok(device)
}

/// The directory the service keeps its certificate and token in.
fn state_dir(config: &Config) -> Option<std::path::PathBuf> {
    config
        .server
        .state_dir
        .clone()
        .or_else(crate::tls::default_state_dir)
}

/// Where the TLS identity comes from; `None` with TLS off.
fn tls_settings(config: &Config) -> Option<crate::tls::Settings> {
    let t = &config.tls;
    t.enabled.then(|| crate::tls::Settings {
        files: t.cert.clone().zip(t.key.clone()),
        state_dir: state_dir(config),
        name: config.server.name.clone(),
    })
}

/// What to publish over mDNS for a device serving on `local` (with TLS when `fingerprint`
/// is given); `None` when bound to loopback and no address is configured: no other machine
/// could reach it, and the responder would still join the mDNS group on every interface
/// (development runs and benchmarks bind 127.0.0.1 and should stay off the LAN).
fn advertisement(
    config: &Config,
    local: SocketAddr,
    fingerprint: Option<&str>,
    auth: bool,
) -> Option<Advertisement> {
    let addresses = if !config.discovery.addresses.is_empty() {
        config.discovery.addresses.clone()
    } else if local.ip().is_loopback() {
        return None;
    } else if !local.ip().is_unspecified() {
        // Bound to one address: the others would lead nowhere.
        vec![local.ip()]
    } else {
        Vec::new()
    };
    Some(Advertisement {
        name: config.server.name.clone(),
        port: local.port(),
        conversation: config.camera.conversation.clone(),
        tls: fingerprint.is_some(),
        auth,
        fingerprint: fingerprint.map(crate::discovery::fingerprint_txt),
        addresses,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    #[test]
    fn the_advertisement_follows_the_listen_address() {
        let mut config = Config::default();
        config.server.name = "Porch".into();
        let ad = advertisement(&config, "0.0.0.0:8080".parse().unwrap(), None, true).unwrap();
        assert!(ad.addresses.is_empty());
        assert!(ad.auth);
        let open = advertisement(&config, "0.0.0.0:8080".parse().unwrap(), None, false);
        assert!(!open.unwrap().auth);
        assert_eq!((ad.name.as_str(), ad.port), ("Porch", 8080));
        assert_eq!(ad.conversation, "camera");
        let ad = advertisement(&config, "192.0.2.4:9000".parse().unwrap(), None, true).unwrap();
        assert_eq!(ad.addresses, vec!["192.0.2.4".parse::<IpAddr>().unwrap()]);
        // Loopback only: nothing to tell the LAN, unless addresses are configured.
        assert!(advertisement(&config, "127.0.0.1:9000".parse().unwrap(), None, true).is_none());
        assert!(advertisement(&config, "[::1]:9000".parse().unwrap(), None, true).is_none());
        config.discovery.addresses = vec!["192.0.2.9".parse().unwrap()];
        let ad = advertisement(&config, "192.0.2.4:9000".parse().unwrap(), None, true).unwrap();
        assert_eq!(ad.addresses, config.discovery.addresses);
        let ad = advertisement(&config, "127.0.0.1:9000".parse().unwrap(), None, true).unwrap();
        assert_eq!(ad.addresses, config.discovery.addresses);
        assert!(!ad.tls && ad.fingerprint.is_none());
        // With TLS: `tls=1` and the fingerprint, in the TXT form.
        let ad = advertisement(
            &config,
            "192.0.2.4:9000".parse().unwrap(),
            Some("AB:CD"),
            true,
        )
        .unwrap();
        assert!(ad.tls);
        assert_eq!(ad.fingerprint.as_deref(), Some("sha-256 AB:CD"));
    }
}
