//! https and wss beside plain http on one port, as a browser and a person checking the
//! certificate meet them: a rustls client that trusts exactly the device's certificate (read
//! from the state directory), the fingerprint in `/api/info` against the certificate file,
//! WebSocket signaling over TLS, clients that stall or send garbage, the generated pair kept
//! across restarts of the real binary, and configured files that cannot be used.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{get_over, Server, WAIT};
use futures_util::{SinkExt, StreamExt};
use peercam::config::Config;
use peercam::service::Device;
use peercam::tls::{Identity, Origin, Settings};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const BIN: &str = env!("CARGO_BIN_EXE_peercam");

/// A scratch directory of this test process, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(label: &str) -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "peercam-tls-{}-{}-{label}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("scratch directory");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

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

/// A TLS client that trusts exactly the certificates in `cert_pem`.
fn connector(cert_pem: &Path) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(cert_pem).expect("PEM file") {
        roots
            .add(cert.expect("a certificate"))
            .expect("a usable root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// A TLS connection to `addr`, checking the certificate for `name`.
async fn tls_connect(
    connector: &TlsConnector,
    addr: SocketAddr,
    name: &str,
) -> std::io::Result<TlsStream<TcpStream>> {
    let name = ServerName::try_from(name.to_owned()).expect("a server name");
    let tcp = TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    tokio::time::timeout(WAIT, connector.connect(name, tcp))
        .await
        .unwrap_or_else(|_| panic!("no TLS handshake within {WAIT:?}"))
}

/// `GET /api/info` over https, trusting `cert_pem`.
async fn https_info(addr: SocketAddr, cert_pem: &Path) -> Value {
    let tls = tls_connect(&connector(cert_pem), addr, "localhost")
        .await
        .expect("TLS handshake with the device's own certificate");
    let (status, body) = get_over(tls, "localhost", "/api/info").await;
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

/// Reads from a nextRTC WebSocket until a message other than `ping`.
async fn next_signal<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Value
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("a message in time")
            .expect("the socket stays open")
            .expect("a frame");
        if let Message::Text(text) = frame {
            let v: Value = serde_json::from_str(&text).expect("JSON");
            if v["signal"] != "ping" {
                return v;
            }
        }
    }
}

#[tokio::test]
async fn https_http_and_wss_share_the_port() {
    let dir = Scratch::new("share");
    let server = tls_server(&dir.0).await;
    let cert = dir.0.join("cert.pem");
    let fingerprint = file_fingerprint(&cert);

    let info = https_info(server.addr, &cert).await;
    assert_eq!(info["tls"], true, "{info}");
    assert_eq!(info["fingerprint"], fingerprint.as_str(), "{info}");
    assert_eq!(fingerprint.len(), 95);

    // The certificate names the loopback address too.
    let by_ip = tls_connect(&connector(&cert), server.addr, "127.0.0.1")
        .await
        .expect("127.0.0.1 is in the certificate");
    let (status, _) = get_over(by_ip, "localhost", "/").await;
    assert_eq!(status, 200);

    // Plain http on the same port.
    let (status, body) = server.get("/api/info").await;
    assert_eq!(status, 200);
    let plain: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(plain["fingerprint"], fingerprint.as_str());

    // wss: a signaling session over TLS.
    let tls = tls_connect(&connector(&cert), server.addr, "localhost")
        .await
        .unwrap();
    let mut request = format!("wss://localhost:{}/signaling", server.addr.port())
        .into_client_request()
        .unwrap();
    // As a browser sends it from the page served over https.
    let origin = format!("https://localhost:{}", server.addr.port());
    request
        .headers_mut()
        .insert("origin", origin.parse().unwrap());
    let (mut ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::client_async(request, tls))
        .await
        .expect("a WebSocket handshake in time")
        .expect("WebSocket over TLS");
    let join = r#"{"from":null,"to":null,"signal":"join","content":"porch","custom":{}}"#;
    ws.send(Message::text(join)).await.unwrap();
    let reply = next_signal(&mut ws).await;
    // Joining a conversation that does not exist creates it, as in nextRTC.
    assert_eq!(reply["signal"], "created", "{reply}");
    assert_eq!(reply["content"], "porch", "{reply}");
    server.expect_counts(1, 1, 0).await;
    ws.close(None).await.unwrap();

    // A client that trusts another certificate is refused by its own check.
    let other = Scratch::new("other");
    stored_identity(&other.0);
    let stranger = connector(&other.0.join("cert.pem"));
    let refused = tls_connect(&stranger, server.addr, "localhost").await;
    assert!(refused.is_err(), "trusted a certificate it was not given");

    server.stop().await.unwrap();
}

#[tokio::test]
async fn the_fingerprint_is_what_openssl_prints() {
    let dir = Scratch::new("openssl");
    let identity = stored_identity(&dir.0);
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(dir.0.join("cert.pem"))
        .output()
        .expect("openssl (scripts/setup.sh --test installs it)");
    assert!(out.status.success(), "{out:?}");
    let printed = String::from_utf8_lossy(&out.stdout);
    let (_, value) = printed.trim().split_once('=').expect("name=value");
    assert_eq!(identity.fingerprint(), value);
    let text = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(dir.0.join("cert.pem"))
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
    let server = tls_server(&dir.0).await;
    let cert = dir.0.join("cert.pem");

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
    let info = https_info(server.addr, &cert).await;
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
    let identity = stored_identity(&dir.0);
    let device = Device::new(&Config::default());
    let app = peercam::web::router(peercam::web::AppState {
        signaling: device.signaling.clone(),
        info: device.info.clone(),
        camera: None,
        primer: None,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(peercam::net::serve(
        peercam::net::Listener::new(listener),
        app,
        Some(identity.server_config()),
        Duration::from_millis(300),
        async {
            let _ = stopped.await;
        },
    ));
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
    let _ = stop.send(());
    tokio::time::timeout(WAIT, serving)
        .await
        .expect("stops")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn without_tls_the_port_is_plain_http() {
    let server = Server::start(&Config::default()).await;
    let (_, body) = server.get("/api/info").await;
    let info: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(info["tls"], false, "{info}");
    assert_eq!(info["fingerprint"], Value::Null, "{info}");
    let dir = Scratch::new("plain");
    stored_identity(&dir.0);
    let tls = tls_connect(
        &connector(&dir.0.join("cert.pem")),
        server.addr,
        "localhost",
    )
    .await;
    assert!(tls.is_err());
    server.stop().await.unwrap();
}

#[test]
fn the_generated_pair_is_kept_private_and_reused() {
    let dir = Scratch::new("keep");
    let first = stored_identity(&dir.0);
    assert_eq!(first.origin(), &Origin::Created(dir.0.clone()));
    let key = dir.0.join("key.pem");
    let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "key.pem is {mode:o}");
    let second = stored_identity(&dir.0);
    assert_eq!(second.origin(), &Origin::Stored(dir.0.clone()));
    assert_eq!(first.fingerprint(), second.fingerprint());
    assert_eq!(
        first.fingerprint(),
        file_fingerprint(&dir.0.join("cert.pem"))
    );
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
    std::fs::write(dir.0.join("cert.pem"), &cert).unwrap();
    std::fs::write(dir.0.join("key.pem"), &key).unwrap();
    let old = file_fingerprint(&dir.0.join("cert.pem"));
    let renewed = stored_identity(&dir.0);
    assert_eq!(renewed.origin(), &Origin::Created(dir.0.clone()));
    assert_ne!(renewed.fingerprint(), old);
    assert_eq!(
        renewed.fingerprint(),
        file_fingerprint(&dir.0.join("cert.pem"))
    );
    let end = renewed.not_after().unwrap();
    assert!((end - now - peercam::tls::VALIDITY_DAYS * day).abs() < 60);

    // Made 700 days ago: kept.
    let (cert, key) = peercam::tls::generate("Porch Cam", now - 700 * day).unwrap();
    std::fs::write(dir.0.join("cert.pem"), &cert).unwrap();
    std::fs::write(dir.0.join("key.pem"), &key).unwrap();
    let kept = stored_identity(&dir.0);
    assert_eq!(kept.origin(), &Origin::Stored(dir.0.clone()));
}

#[test]
fn a_broken_generated_pair_is_set_aside_not_overwritten() {
    let dir = Scratch::new("broken");
    std::fs::write(dir.0.join("cert.pem"), "not a certificate\n").unwrap();
    std::fs::write(dir.0.join("key.pem"), "not a key\n").unwrap();
    let identity = stored_identity(&dir.0);
    assert_eq!(identity.origin(), &Origin::Created(dir.0.clone()));
    let mut aside: Vec<String> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".broken-"))
        .collect();
    aside.sort();
    assert_eq!(aside.len(), 2, "{aside:?}");
    assert!(aside[0].starts_with("cert.pem.broken-"), "{aside:?}");
    let kept = std::fs::read_to_string(dir.0.join(&aside[0])).unwrap();
    assert_eq!(kept, "not a certificate\n");
    assert_eq!(
        identity.fingerprint(),
        file_fingerprint(&dir.0.join("cert.pem"))
    );

    // Only one of the two: also set aside.
    std::fs::remove_file(dir.0.join("key.pem")).unwrap();
    let again = stored_identity(&dir.0);
    assert_ne!(again.fingerprint(), identity.fingerprint());
    assert!(dir.0.join("key.pem").exists());
}

#[test]
fn an_unwritable_state_directory_gives_an_in_memory_certificate() {
    // Directories that can never be made, even by root: one in /proc, one under a file.
    let identity = stored_identity(Path::new("/proc/peercam-tls-test"));
    assert_eq!(identity.origin(), &Origin::Ephemeral);
    assert!(!Path::new("/proc/peercam-tls-test").exists());
    let dir = Scratch::new("unwritable");
    let file = dir.0.join("file");
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

/// `peercam serve` on a free loopback port, its stderr collected.
struct Serve {
    child: Child,
    logs: Arc<Mutex<String>>,
    /// Reads stderr until the process closes it.
    reader: Option<std::thread::JoinHandle<()>>,
    port: u16,
}

impl Serve {
    fn start(config: &Path, extra: &[&str]) -> Serve {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let listen = format!("127.0.0.1:{port}");
        let mut child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(config)
            .args(["--listen", &listen, "--no-camera", "--no-discovery"])
            .args(extra)
            .env("RUST_LOG", "info")
            .env_remove("JOURNAL_STREAM")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("STATE_DIRECTORY")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn peercam");
        let logs = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("piped");
        let sink = logs.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut logs = sink.lock().unwrap();
                logs.push_str(&line);
                logs.push('\n');
            }
        });
        Serve {
            child,
            logs,
            reader: Some(reader),
            port,
        }
    }

    fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// Waits for a log line containing `text` and returns it.
    fn line(&mut self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(line) = self.logs().lines().find(|l| l.contains(text)) {
                return line.to_owned();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("exited ({status}) before {text:?}:\n{}", self.logs());
            }
            assert!(Instant::now() < deadline, "no {text:?} in\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, and a clean exit.
    fn stop(mut self) {
        // SAFETY: kill takes plain integers; the pid is our own child, not yet reaped.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "{status}\n{}", self.logs());
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The fingerprint in the start-up line `https on <addr>, certificate SHA-256 <fp>`.
fn logged_fingerprint(svc: &mut Serve) -> String {
    let line = svc.line("certificate SHA-256 ");
    assert!(
        line.contains(&format!("https on 127.0.0.1:{}", svc.port)),
        "{line}"
    );
    line.rsplit(' ').next().unwrap_or_default().to_owned()
}

#[test]
fn the_service_keeps_its_certificate_across_restarts() {
    let dir = Scratch::new("restart");
    let state = dir.0.join("state");
    let config = dir.0.join("peercam.toml");
    std::fs::write(
        &config,
        format!("[server]\nstate_dir = {:?}\n", state.to_str().unwrap()),
    )
    .unwrap();

    let mut first = Serve::start(&config, &[]);
    let fp = logged_fingerprint(&mut first);
    first.line("generated a self-signed certificate");
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
    let info = rt.block_on(https_info(addr, &state.join("cert.pem")));
    assert_eq!(info["fingerprint"], fp.as_str());
    first.stop();

    let mut second = Serve::start(&config, &[]);
    assert_eq!(logged_fingerprint(&mut second), fp);
    second.line("generated earlier");
    second.stop();

    // --no-tls: plain http only, no certificate line.
    let mut plain = Serve::start(&config, &["--no-tls"]);
    plain.line("ready");
    let (_, body) = rt.block_on(common::http_get(
        format!("127.0.0.1:{}", plain.port).parse().unwrap(),
        "/api/info",
    ));
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
    let mut svc = Serve::start(&tls_config(dir, cert, key), &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = svc.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "still running:\n{}", svc.logs());
        std::thread::sleep(Duration::from_millis(20));
    };
    // The reader thread may still be forwarding the last lines.
    if let Some(reader) = svc.reader.take() {
        reader.join().expect("stderr reader");
    }
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
    stored_identity(&good.0);
    let (cert, key) = (good.0.join("cert.pem"), good.0.join("key.pem"));

    let broken = dir.0.join("broken.pem");
    std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\nAAAA\n").unwrap();
    refused_at_start(
        &dir.0,
        &broken,
        &key,
        &[broken.to_str().unwrap(), "tls.cert", "PEM"],
    );

    let empty = dir.0.join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    refused_at_start(
        &dir.0,
        &cert,
        &empty,
        &[empty.to_str().unwrap(), "tls.key", "no private key"],
    );

    let missing = dir.0.join("missing.pem");
    refused_at_start(
        &dir.0,
        &missing,
        &key,
        &[missing.to_str().unwrap(), "No such file"],
    );

    // A key of another certificate.
    let other = Scratch::new("other-key");
    stored_identity(&other.0);
    let other_key = other.0.join("key.pem");
    refused_at_start(
        &dir.0,
        &cert,
        &other_key,
        &[cert.to_str().unwrap(), other_key.to_str().unwrap()],
    );

    // The configured pair itself works, and is used as it is.
    let mut svc = Serve::start(&tls_config(&dir.0, &cert, &key), &[]);
    assert_eq!(logged_fingerprint(&mut svc), file_fingerprint(&cert));
    svc.stop();
}
