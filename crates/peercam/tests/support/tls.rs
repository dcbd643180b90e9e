//! The client side of TLS as a person checking the device's certificate meets it: a rustls
//! client that trusts exactly the certificates in a PEM file (the device's own, read from its
//! state directory), and the fingerprint the device reports for such a file.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::WAIT;

/// A TLS client that trusts exactly the certificates in `cert_pem`.
pub fn trusting(cert_pem: &Path) -> TlsConnector {
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
pub async fn connect(
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

/// The fingerprint of the certificate in `cert_pem`, as the device computes and advertises it.
pub fn device_fingerprint(cert_pem: &Path) -> String {
    let pem =
        std::fs::read(cert_pem).unwrap_or_else(|e| panic!("reading {}: {e}", cert_pem.display()));
    let der = CertificateDer::from_pem_slice(&pem).expect("PEM");
    peercam::tls::fingerprint(&der)
}
