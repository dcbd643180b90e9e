//! https and wss beside plain http on one port, as a browser and a person checking the
//! certificate meet them: a rustls client that trusts exactly the device's certificate (read
//! from the state directory), the fingerprint in `/api/info` against the certificate file,
//! WebSocket signaling over TLS, clients that stall or send garbage, the generated pair kept
//! across restarts of the real binary, and configured files that cannot be used.

// Each test binary uses a different part of the shared support.
#[allow(dead_code)]
mod support;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use peercam::config::Config;
use peercam::service::Device;
use peercam::tls::{Identity, Origin, Settings};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use serde_json::Value;
use support::device::{free_port, serve_command, with_token, Serve, Server, START_LIMIT};
use support::http::get_over;
use support::scratch::Scratch;
use support::tls::{connect as tls_connect, trusting as connector};
use support::ws::Client;
use support::WAIT;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// SHA-256 of a PEM certificate file's DER, as `openssl x509 -fingerprint -sha256` prints it;
/// computed here independently of the device's code.
fn file_fingerprint(cert_pem: &Path) -> String {
    let der = CertificateDer::from_pem_file(cert_pem).expect("a PEM certificate");
    ring::digest::digest(&ring::digest::SHA256, &der)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// `GET /api/info` over https with the access token, trusting `cert_pem`.
async fn https_info(addr: SocketAddr, cert_pem: &Path, token: Option<&str>) -> Value {
    let tls = tls_connect(&connector(cert_pem), addr, "localhost")
        .await
        .expect("TLS handshake with the device's own certificate");
    let (status, body) = get_over(tls, "localhost", "/api/info", token).await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("JSON")
}

/// The identity a device keeps in `dir`.
fn stored_identity(dir: &Path) -> Identity {
    Identity::load(&Settings {
        files: None,
        state_dir: Some(dir.to_owned()),
        name: "Porch Cam".into(),
    })
    .expect("a usable identity")
}

/// A device without camera serving https and http with the pair kept in `dir`.
async fn tls_server(dir: &Path) -> Server {
    let mut device = Device::new(&Config::default());
    device.enable_tls(&stored_identity(dir));
    Server::serve(device).await
}

#[tokio::test]
async fn https_http_and_wss_share_the_port() {
    let dir = Scratch::new("share");
    let server = tls_server(dir.path()).await;
    let cert = dir.join("cert.pem");
    let fingerprint = file_fingerprint(&cert);

    let info = https_info(server.addr, &cert, server.token().as_deref()).await;
    assert_eq!(info["tls"], true, "{info}");
    assert_eq!(info["fingerprint"], fingerprint.as_str(), "{info}");
    assert_eq!(fingerprint.len(), 95);

    // The certificate names the loopback address too.
    let by_ip = tls_connect(&connector(&cert), server.addr, "127.0.0.1")
        .await
        .expect("127.0.0.1 is in the certificate");
    let (status, _) = get_over(by_ip, "localhost", "/", server.token().as_deref()).await;
    assert_eq!(status, 200);

    // Plain http on the same port.
    let (status, body) = server.get("/api/info").await;
    assert_eq!(status, 200);
    let plain: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(plain["fingerprint"], fingerprint.as_str());

    // wss: a signaling session over TLS.
    let url = format!("wss://localhost:{}/signaling", server.addr.port());
    let mut request = with_token(&url, server.token().as_deref())
        .into_client_request()
        .unwrap();
    // As a browser sends it from the page served over https.
    let origin = format!("https://localhost:{}", server.addr.port());
    request
        .headers_mut()
        .insert("origin", origin.parse().unwrap());
    let mut ws = Client::connect(request, Some(&connector(&cert)), "wss")
        .await
        .expect("WebSocket over TLS");
    ws.send("join", "", "porch", &[]).await;
    let reply = ws.recv().await;
    // Joining a conversation that does not exist creates it, as in nextRTC.
    assert_eq!(reply.signal, "created", "{reply:?}");
    assert_eq!(reply.content, "porch", "{reply:?}");
    server.expect_counts(1, 1, 0).await;
    ws.close().await;

    // A client that trusts another certificate is refused by its own check.
    let other = Scratch::new("other");
    stored_identity(other.path());
    let stranger = connector(&other.join("cert.pem"));
    let refused = tls_connect(&stranger, server.addr, "localhost").await;
    assert!(refused.is_err(), "trusted a certificate it was not given");

    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_fingerprint_is_what_openssl_prints() {
    let dir = Scratch::new("openssl");
    let identity = stored_identity(dir.path());
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(dir.join("cert.pem"))
        .output()
        .expect("openssl (scripts/setup.sh --test installs it)");
    assert!(out.status.success(), "{out:?}");
    let printed = String::from_utf8_lossy(&out.stdout);
    let (_, value) = printed.trim().split_once('=').expect("name=value");
    assert_eq!(identity.fingerprint(), value);
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(dir.join("cert.pem"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    for wanted in [
        "DNS:porch-cam.local",
        "DNS:localhost",
        "IP Address:127.0.0.1",
        "IP Address:0:0:0:0:0:0:0:1",
        "Porch Cam",
        "prime256v1",
    ] {
        assert!(text.contains(wanted), "{wanted} missing from\n{text}");
    }
}

#[tokio::test]
async fn stalled_and_garbage_clients_hold_up_nobody() {
    let dir = Scratch::new("stall");
    let server = tls_server(dir.path()).await;
    let cert = dir.join("cert.pem");

    // Says nothing at all.
    let silent = TcpStream::connect(server.addr).await.unwrap();
    // Starts a TLS record and stops.
    let mut partial = TcpStream::connect(server.addr).await.unwrap();
    partial.write_all(&[0x16, 0x03, 0x01, 0x02]).await.unwrap();
    // Starts an HTTP request line and stops.
    let mut half_http = TcpStream::connect(server.addr).await.unwrap();
    half_http.write_all(b"GE").await.unwrap();
    // A TLS record header followed by nonsense: refused at once.
    let mut garbage = TcpStream::connect(server.addr).await.unwrap();
    garbage
        .write_all(&[0x16, 0x03, 0x01, 0x00, 0x05, 0xde, 0xad, 0xbe, 0xef, 0x00])
        .await
        .unwrap();

    let started = Instant::now();
    let info = https_info(server.addr, &cert, server.token().as_deref()).await;
    assert_eq!(info["tls"], true);
    let (status, _) = server.get("/api/stats").await;
    assert_eq!(status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "requests waited {:?} behind stalled clients",
        started.elapsed()
    );

    // The garbage connection is closed by the server (an alert at most, then the end).
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(WAIT, garbage.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "a garbage handshake was kept open");

    // Stopping does not wait for connections that never asked for anything, and waits for
    // one that never finished its request line only as long as the drain allows.
    let stopping = Instant::now();
    server.stop().await.unwrap();
    let limit = peercam::net::SHUTDOWN_DRAIN + Duration::from_millis(500);
    assert!(
        stopping.elapsed() < limit,
        "stop waited {:?} for stalled clients",
        stopping.elapsed()
    );
    drop((silent, partial, half_http));
}

#[tokio::test]
async fn a_silent_client_is_let_go_after_the_handshake_timeout() {
    let dir = Scratch::new("timeout");
    let identity = stored_identity(dir.path());
    // The device's parts served with a handshake timeout short enough to wait for.
    let server = Server::serve_with(
        Device::new(&Config::default()),
        |device, listener, shutdown| {
            let app = peercam::web::router(peercam::web::AppState {
                signaling: device.signaling.clone(),
                info: device.info.clone(),
                camera: None,
                primer: None,
                whep: None,
                neighbours: None,
                access: device.access.clone(),
                snapshots: None,
            });
            peercam::net::serve(
                peercam::net::Listener::new(listener),
                app,
                Some(identity.server_config()),
                Duration::from_millis(300),
                shutdown,
            )
        },
    )
    .await;
    let addr = server.addr;
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut partial = TcpStream::connect(addr).await.unwrap();
    partial.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    for (what, stream) in [("silent", &mut silent), ("partial hello", &mut partial)] {
        let started = Instant::now();
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(WAIT, stream.read(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "{what}: {read:?} after {:?}",
            started.elapsed()
        );
        assert!(started.elapsed() < Duration::from_secs(2), "{what}");
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn without_tls_the_port_is_plain_http() {
    let server = Server::start(&Config::default()).await;
    let (_, body) = server.get("/api/info").await;
    let info: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(info["tls"], false, "{info}");
    assert_eq!(info["fingerprint"], Value::Null, "{info}");
    let dir = Scratch::new("plain");
    stored_identity(dir.path());
    let tls = tls_connect(&connector(&dir.join("cert.pem")), server.addr, "localhost").await;
    assert!(tls.is_err());
    server.stop().await.unwrap();
}

#[test]
fn the_generated_pair_is_kept_private_and_reused() {
    let dir = Scratch::new("keep");
    let first = stored_identity(dir.path());
    assert_eq!(first.origin(), &Origin::Created(dir.path().to_path_buf()));
    let key = dir.join("key.pem");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "key.pem is {mode:o}");
    let second = stored_identity(dir.path());
    assert_eq!(second.origin(), &Origin::Stored(dir.path().to_path_buf()));
    assert_eq!(first.fingerprint(), second.fingerprint());
    assert_eq!(first.fingerprint(), file_fingerprint(&dir.join("cert.pem")));
}

#[test]
fn a_generated_certificate_near_its_end_is_renewed() {
    let dir = Scratch::new("renew");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let day = 86_400;
    // Made 790 days ago: 10 days left.
    let (cert, key) = peercam::tls::generate("Porch Cam", now - 790 * day).unwrap();
    std::fs::write(dir.join("cert.pem"), &cert).unwrap();
    std::fs::write(dir.join("key.pem"), &key).unwrap();
    let old = file_fingerprint(&dir.join("cert.pem"));
    let renewed = stored_identity(dir.path());
    assert_eq!(renewed.origin(), &Origin::Created(dir.path().to_path_buf()));
    assert_ne!(renewed.fingerprint(), old);
    assert_eq!(
        renewed.fingerprint(),
        file_fingerprint(&dir.join("cert.pem"))
    );
    let end = renewed.not_after().unwrap();
    assert!((end - now - peercam::tls::VALIDITY_DAYS * day).abs() < 60);

    // Made 700 days ago: kept.
    let (cert, key) = peercam::tls::generate("Porch Cam", now - 700 * day).unwrap();
    std::fs::write(dir.join("cert.pem"), &cert).unwrap();
    std::fs::write(dir.join("key.pem"), &key).unwrap();
    let kept = stored_identity(dir.path());
    assert_eq!(kept.origin(), &Origin::Stored(dir.path().to_path_buf()));
}

#[test]
fn a_broken_generated_pair_is_set_aside_not_overwritten() {
    let dir = Scratch::new("broken");
    std::fs::write(dir.join("cert.pem"), "not a certificate\n").unwrap();
    std::fs::write(dir.join("key.pem"), "not a key\n").unwrap();
    let identity = stored_identity(dir.path());
    assert_eq!(
        identity.origin(),
        &Origin::Created(dir.path().to_path_buf())
    );
    let mut aside: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".broken-"))
        .collect();
    aside.sort();
    assert_eq!(aside.len(), 2, "{aside:?}");
    assert!(aside[0].starts_with("cert.pem.broken-"), "{aside:?}");
    let kept = std::fs::read_to_string(dir.join(&aside[0])).unwrap();
    assert_eq!(kept, "not a certificate\n");
    assert_eq!(
        identity.fingerprint(),
        file_fingerprint(&dir.join("cert.pem"))
    );

    // Only one of the two: also set aside.
    std::fs::remove_file(dir.join("key.pem")).unwrap();
    let again = stored_identity(dir.path());
    assert_ne!(again.fingerprint(), identity.fingerprint());
    assert!(dir.join("key.pem").exists());
}

#[test]
fn an_unwritable_state_directory_gives_an_in_memory_certificate() {
    // Directories that can never be made, even by root: one in /proc, one under a file.
    let identity = stored_identity(Path::new("/proc/peercam-tls-test"));
    assert_eq!(identity.origin(), &Origin::Ephemeral);
    assert!(!Path::new("/proc/peercam-tls-test").exists());
    let dir = Scratch::new("unwritable");
    let file = dir.join("file");
    std::fs::write(&file, "").unwrap();
    let identity = stored_identity(&file.join("state"));
    assert_eq!(identity.origin(), &Origin::Ephemeral);
    let none = Identity::load(&Settings {
        files: None,
        state_dir: None,
        name: "x".into(),
    })
    .unwrap();
    assert_eq!(none.origin(), &Origin::Ephemeral);
}

/// `peercam serve` on a free loopback port with `config`, no camera and no discovery, and
/// `extra`; ready.
fn serve(config: &Path, extra: &[&str]) -> Serve {
    Serve::start(&serve_args(config, extra))
}

fn serve_args<'a>(config: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "--config",
        config.to_str().expect("UTF-8 path"),
        "--no-camera",
        "--no-discovery",
    ];
    args.extend_from_slice(extra);
    args
}

/// The fingerprint in the start-up line `https on <addr>, certificate SHA-256 <fp>`.
fn logged_fingerprint(svc: &mut Serve) -> String {
    let line = svc.line("certificate SHA-256 ", START_LIMIT);
    assert!(
        line.contains(&format!("https on 127.0.0.1:{}", svc.port)),
        "{line}"
    );
    line.rsplit(' ').next().unwrap_or_default().to_owned()
}

#[test]
fn the_service_keeps_its_certificate_across_restarts() {
    let dir = Scratch::new("restart");
    let state = dir.join("state");
    let config = dir.join("peercam.toml");
    std::fs::write(
        &config,
        format!("[server]\nstate_dir = {:?}\n", state.to_str().unwrap()),
    )
    .unwrap();

    let mut first = serve(&config, &[]);
    let fp = logged_fingerprint(&mut first);
    first.line("generated a self-signed certificate", START_LIMIT);
    assert_eq!(fp, file_fingerprint(&state.join("cert.pem")));
    let mode = std::fs::metadata(state.join("key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", first.port).parse().unwrap();
    let token = first.token();
    assert!(token.is_some(), "{}", first.logs());
    let info = rt.block_on(https_info(addr, &state.join("cert.pem"), token.as_deref()));
    assert_eq!(info["fingerprint"], fp.as_str());
    first.stop();

    let mut second = serve(&config, &[]);
    assert_eq!(logged_fingerprint(&mut second), fp);
    second.line("generated earlier", START_LIMIT);
    second.stop();

    // --no-tls: plain http only, no certificate line.
    let mut plain = serve(&config, &["--no-tls"]);
    plain.line("ready", START_LIMIT);
    let (_, body) = rt.block_on(plain.get("/api/info"));
    let info: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(info["tls"], false);
    assert!(!plain.logs().contains("https on"), "{}", plain.logs());
    plain.stop();
}

/// A config file in `dir` naming `cert` and `key` as the TLS pair; its path.
fn tls_config(dir: &Path, cert: &Path, key: &Path) -> PathBuf {
    let config = dir.join("peercam.toml");
    let text = format!(
        "[tls]\ncert = {:?}\nkey = {:?}\n",
        cert.to_str().unwrap(),
        key.to_str().unwrap()
    );
    std::fs::write(&config, text).unwrap();
    config
}

/// Runs `peercam serve` with a config that names `cert` and `key`; it must fail at start-up
/// with a message containing every one of `needles`.
fn refused_at_start(dir: &Path, cert: &Path, key: &Path, needles: &[&str]) {
    let config = tls_config(dir, cert, key);
    let port = free_port();
    let mut svc = Serve::spawn(serve_command(port, &serve_args(&config, &[])), port);
    let status = svc.exit_within(START_LIMIT);
    let logs = svc.logs();
    assert!(!status.success(), "{logs}");
    for needle in needles {
        assert!(logs.contains(needle), "{needle:?} missing from\n{logs}");
    }
}

#[test]
fn configured_files_that_cannot_be_used_stop_the_start_naming_the_file() {
    let dir = Scratch::new("configured");
    let good = Scratch::new("good");
    stored_identity(good.path());
    let (cert, key) = (good.join("cert.pem"), good.join("key.pem"));

    let broken = dir.join("broken.pem");
    std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\nAAAA\n").unwrap();
    refused_at_start(
        dir.path(),
        &broken,
        &key,
        &[broken.to_str().unwrap(), "tls.cert", "PEM"],
    );

    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    refused_at_start(
        dir.path(),
        &cert,
        &empty,
        &[empty.to_str().unwrap(), "tls.key", "no private key"],
    );

    let missing = dir.join("missing.pem");
    refused_at_start(
        dir.path(),
        &missing,
        &key,
        &[missing.to_str().unwrap(), "No such file"],
    );

    // A key of another certificate.
    let other = Scratch::new("other-key");
    stored_identity(other.path());
    let other_key = other.join("key.pem");
    refused_at_start(
        dir.path(),
        &cert,
        &other_key,
        &[cert.to_str().unwrap(), other_key.to_str().unwrap()],
    );

    // The configured pair itself works, and is used as it is.
    let mut svc = serve(&tls_config(dir.path(), &cert, &key), &[]);
    assert_eq!(logged_fingerprint(&mut svc), file_fingerprint(&cert));
    svc.stop();
}
