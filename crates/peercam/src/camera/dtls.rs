//! The DTLS certificate the camera's peers present: one ECDSA P-256 certificate made when
//! the camera starts (about a millisecond) and handed to every media worker.
//!
//! ECDSA P-256 is what browsers make for themselves: every WebRTC client speaks it (some,
//! such as aiortc, speak nothing else), and it is far cheaper to make and to sign with on a
//! Pi than GStreamer's default RSA-2048 certificate. It must not read or write files: a
//! peer is told the fingerprint in the SDP, so the certificate need not outlive the process.

use peercam_wire::DtlsIdentity;

/// A fresh self-signed ECDSA P-256 certificate and its key, with its SHA-256 fingerprint.
///
/// Its validity is rcgen's default (1975 to 4096): a WebRTC peer checks the fingerprint, not
/// dates, and a board without a real-time clock may start with its clock far off.
pub fn generate() -> Result<DtlsIdentity, String> {
    let err = |e: rcgen::Error| format!("making the DTLS certificate: {e}");
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(err)?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "peercam");
    let cert = params.self_signed(&key).map_err(err)?;
    Ok(DtlsIdentity {
        pem: format!("{}{}", cert.pem(), key.serialize_pem()),
        fingerprint: crate::tls::fingerprint(cert.der()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_certificate_is_ecdsa_p256_and_its_fingerprint_is_of_its_der() {
        let t = std::time::Instant::now();
        let id = generate().unwrap();
        // Cheap enough to make at every start, even on a Pi (a generous bound for debug builds).
        assert!(t.elapsed() < std::time::Duration::from_millis(500));
        let (cert, key) = id
            .pem
            .split_once("-----END CERTIFICATE-----")
            .expect("the certificate comes first");
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(key.contains("-----BEGIN PRIVATE KEY-----"));
        let (_, pem) = x509_parser::pem::parse_x509_pem(id.pem.as_bytes()).unwrap();
        assert_eq!(id.fingerprint, crate::tls::fingerprint(&pem.contents));
        assert_eq!(id.fingerprint.len(), 95);
        let parsed = pem.parse_x509().unwrap();
        // id-ecPublicKey with the prime256v1 curve.
        let spki = &parsed.tbs_certificate.subject_pki.algorithm;
        assert_eq!(spki.algorithm.to_id_string(), "1.2.840.10045.2.1");
        let curve = spki.parameters.as_ref().unwrap().as_oid().unwrap();
        assert_eq!(curve.to_id_string(), "1.2.840.10045.3.1.7");
        assert_ne!(generate().unwrap().fingerprint, id.fingerprint);
    }
}
