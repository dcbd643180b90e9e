//! Making the self-signed certificate: its names, key type and validity.
//!
//! It must not read or write files and must not decide when a certificate is made; the
//! identity policy ([`super::Identity`]) does, and the clock is passed in.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{TlsError, DAY, VALIDITY_DAYS};

/// A self-signed ECDSA P-256 certificate for `name` and its key, both PEM, valid from a day
/// before `now` (clocks of boards without an RTC may lag) for [`VALIDITY_DAYS`]. Names:
/// `<host label>.local`, `localhost`, 127.0.0.1 and ::1; CN: `name`.
pub fn generate(name: &str, now: i64) -> Result<(String, String), TlsError> {
    let err = |e: rcgen::Error| TlsError::Generate(e.to_string());
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(err)?;
    let host = format!("{}.local", crate::discovery::host_label(name));
    let mut params =
        rcgen::CertificateParams::new(vec![host, "localhost".to_owned()]).map_err(err)?;
    params.subject_alt_names.extend([
        rcgen::SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        rcgen::SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)),
    ]);
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let at = |secs: i64| {
        time::OffsetDateTime::from_unix_timestamp(secs)
            .map_err(|e| TlsError::Generate(format!("the clock reads {secs}: {e}")))
    };
    params.not_before = at(now - DAY)?;
    params.not_after = at(now + VALIDITY_DAYS * DAY)?;
    let cert = params.self_signed(&key).map_err(err)?;
    Ok((cert.pem(), key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::super::certificate::{fingerprint, from_pem};
    use super::super::pem::parse_chain;
    use super::super::{Identity, Origin};
    use super::*;

    #[test]
    fn generated_certificates_name_the_device_and_last_800_days() {
        let now = 1_700_000_000;
        let (cert_pem, key_pem) = generate("Porch Cam", now).unwrap();
        let identity = from_pem(cert_pem.as_bytes(), key_pem.as_bytes(), Origin::Ephemeral)
            .expect("rustls takes the generated pair");
        assert_eq!(identity.not_after(), Some(now + VALIDITY_DAYS * DAY));
        let der = parse_chain(cert_pem.as_bytes()).unwrap().remove(0);
        assert_eq!(identity.fingerprint(), fingerprint(&der));
        // The names are in the DER as plain ASCII.
        let raw = String::from_utf8_lossy(&der);
        assert!(raw.contains("porch-cam.local") && raw.contains("localhost"));
        assert!(raw.contains("Porch Cam"));
        assert_eq!(
            identity.server_config().alpn_protocols,
            vec![b"http/1.1".to_vec()]
        );
        // Two certificates never share a fingerprint.
        assert_ne!(
            Identity::ephemeral("x").unwrap().fingerprint(),
            Identity::ephemeral("x").unwrap().fingerprint()
        );
    }
}
