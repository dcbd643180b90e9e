//! What is read off a certificate and key once they are DER: the rustls server configuration
//! the port answers with, the SHA-256 fingerprint a person compares with the browser's, and
//! the end of validity the renewal decision needs.
//!
//! It must not read or write files and must not decide anything: whether an end date is too
//! close is the identity policy's question ([`super::Identity`]).

use std::fmt::Write as _;
use std::sync::Arc;

use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::prelude::{FromDer as _, X509Certificate};

use super::pem::{parse_chain, parse_key};
use super::{Identity, Origin};

/// [`build`] from PEM text.
pub(super) fn from_pem(
    cert_pem: &[u8],
    key_pem: &[u8],
    origin: Origin,
) -> Result<Identity, String> {
    build(parse_chain(cert_pem)?, parse_key(key_pem)?, origin)
}

/// The rustls configuration for a chain and its key; fails when rustls cannot use them
/// (a certificate it cannot parse, an unsupported key, a key of another certificate).
pub(super) fn build(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    origin: Origin,
) -> Result<Identity, String> {
    // `parse_chain` never returns an empty chain.
    let leaf = chain.first().ok_or("no certificate")?.clone();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| e.to_string())?;
    // The HTTP stack behind the handshake speaks HTTP/1.1 only (WebSocket upgrades need it).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Identity {
        config: Arc::new(config),
        fingerprint: fingerprint(&leaf),
        not_after: not_after(&leaf),
        origin,
    })
}

/// SHA-256 of `der`, uppercase hex pairs joined by colons: what
/// `openssl x509 -noout -fingerprint -sha256` prints after the `=`, and what browsers show.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let mut out = String::with_capacity(95);
    for (i, byte) in digest.as_ref().iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        // Writing to a String cannot fail.
        let _ = write!(out, "{byte:02X}");
    }
    out
}

/// The certificate's notAfter, Unix seconds; `None` when `der` is not an X.509 certificate.
/// rustls has already accepted the certificate when this runs; this only reads the one field
/// it does not expose.
pub fn not_after(der: &[u8]) -> Option<i64> {
    let (_, certificate) = X509Certificate::from_der(der).ok()?;
    Some(certificate.validity().not_after.timestamp())
}

#[cfg(test)]
mod tests {
    use super::super::{generate, VALIDITY_DAYS};
    use super::*;

    const DAY: i64 = 86_400;

    /// The leaf of a certificate generated at `now`, as DER.
    fn generated_der(now: i64) -> Vec<u8> {
        let (cert_pem, _) = generate("x", now).unwrap();
        parse_chain(cert_pem.as_bytes()).unwrap().remove(0).to_vec()
    }

    /// `der` with its one occurrence of `from` replaced by `to` (same length).
    fn replaced(der: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
        assert_eq!(from.len(), to.len());
        let at = der
            .windows(from.len())
            .position(|w| w == from)
            .expect("the pattern is in the certificate");
        let mut out = der.to_vec();
        out[at..at + to.len()].copy_from_slice(to);
        out
    }

    #[test]
    fn fingerprints_are_uppercase_hex_pairs_with_colons() {
        // SHA-256("abc"), FIPS 180-2's first example.
        assert_eq!(
            fingerprint(b"abc"),
            "BA:78:16:BF:8F:01:CF:EA:41:41:40:DE:5D:AE:22:23:B0:03:61:A3:96:17:7A:9C:\
             B4:10:FF:61:F2:00:15:AD"
        );
        let fp = fingerprint(b"");
        assert_eq!(fp.len(), 95);
        assert!(fp.starts_with("E3:B0:C4:42:"), "{fp}");
    }

    #[test]
    fn end_dates_read_both_time_encodings() {
        // UTCTime (RFC 5280 §4.1.2.5.1: 50–99 are 19xx, 00–49 are 20xx), then
        // GeneralizedTime, which certificates use from 2050 on.
        for (end, encoded) in [
            (0, &b"\x17\x0d700101000000Z"[..]),
            (2_524_607_999, b"\x17\x0d491231235959Z"),
            (2_669_120_000, b"\x18\x0f20540731141320Z"),
        ] {
            let der = generated_der(end - VALIDITY_DAYS * DAY);
            assert!(
                der.windows(encoded.len()).any(|w| w == encoded),
                "{encoded:?}"
            );
            assert_eq!(not_after(&der), Some(end));
        }
        // A time that is not one, or a field of another type: no end date.
        let der = generated_der(2_524_607_999 - VALIDITY_DAYS * DAY);
        let good = b"\x17\x0d491231235959Z";
        for bad in [
            &b"\x17\x0d491331235959Z"[..],
            b"\x17\x0d49123123595aZ",
            b"\x17\x0d4912312359590",
            b"\x04\x0d491231235959Z",
        ] {
            assert_eq!(not_after(&replaced(&der, good, bad)), None, "{bad:?}");
        }
    }

    #[test]
    fn malformed_der_has_no_end_date_and_never_panics() {
        let der = generated_der(1_700_000_000);
        assert!(not_after(&der).is_some());
        for cut in 0..der.len() {
            // Cut short, or with a byte flipped: an answer or None, never a panic.
            let _ = not_after(&der[..cut]);
            let mut flipped = der.clone();
            flipped[cut] ^= 0xff;
            let _ = not_after(&flipped);
        }
        assert_eq!(not_after(&[]), None);
        assert_eq!(not_after(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
    }
}
