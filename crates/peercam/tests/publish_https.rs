//! Publishing over WHIP to an https endpoint: the device checks the server's certificate
//! against the certificate authorities it is given (`SSL_CERT_FILE`, here the endpoint's own
//! self-signed certificate), posts its offer with the Bearer token inside TLS, streams, and
//! ends its session with `DELETE` when it stops. A test binary of its own: the certificate
//! authorities are read once per process, from the environment set before anything runs.

// Each test binary uses a different part of the shared support.
#[allow(dead_code)]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use peercam::config::Config;
use peercam::service::Device;
use peercam_wire::Capture;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use support::device::{media_program, test_launch, Server};
use support::scratch::Scratch;
use support::whip_endpoint::Endpoint;

const TOKEN: &str = "tls-stream-key";

/// The server side of TLS with a fresh self-signed certificate (for 127.0.0.1 among others),
/// and the certificate's PEM.
fn self_signed() -> (Arc<rustls::ServerConfig>, String) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let (cert_pem, key_pem) = peercam::tls::generate("whip endpoint", now).unwrap();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    (Arc::new(config), cert_pem)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_publishes_to_an_https_endpoint_it_trusts() {
    let _ = env_logger::builder().is_test(true).try_init();
    let scratch = Scratch::new("whip-tls");
    let (tls, cert_pem) = self_signed();
    let roots = scratch.join("roots.pem");
    std::fs::write(&roots, cert_pem).unwrap();
    // Set before the device (or anything else that reads the environment on another thread)
    // starts; this binary runs this one test.
    std::env::set_var("SSL_CERT_FILE", &roots);

    let endpoint = Endpoint::start_tls(vec![], tls).await;
    assert!(endpoint.url().starts_with("https://127.0.0.1:"));
    let mut config = Config::default();
    config.camera.ice_addresses = vec!["127.0.0.1".parse().unwrap()];
    config.publish.enabled = true;
    config.publish.url = Some(endpoint.url());
    config.publish.token = Some(TOKEN.into());
    let mut device = Device::new(&config);
    device
        .start_camera(
            &config,
            Capture::Launch(test_launch("ball", 320, 240)),
            &media_program(),
        )
        .expect("camera starts");
    let server = Server::serve(device).await;

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let frames = endpoint.session().map_or(0, |(_, v)| {
            v.frames.load(std::sync::atomic::Ordering::Relaxed)
        });
        if frames >= 30 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the https endpoint decoded {frames} frames: {:#?}",
            endpoint.seen()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seen = endpoint.seen();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some(format!("Bearer {TOKEN}").as_str())
    );

    server.stop().await.expect("the server stops");
    endpoint
        .wait(Duration::from_secs(3), "the DELETE over https", |seen| {
            seen.iter()
                .any(|s| s.method == "DELETE" && s.path == "/whip/session/1")
        })
        .await;
}
