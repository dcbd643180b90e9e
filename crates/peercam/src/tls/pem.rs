//! PEM text to DER: the certificate chain and the private key, with a sentence for each way
//! a file can fail to hold them.
//!
//! It owns no files and no policy: callers read the bytes ([`super::store`]) and decide what a
//! failure means (a start-up error for configured files, a set-aside for kept ones). It must
//! not check that the pair goes together; rustls does that in [`super::certificate`].

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Every certificate in `pem`, leaf first; an error when there is none or the PEM is bad.
pub(super) fn parse_chain(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not valid PEM: {e}"))?;
    if chain.is_empty() {
        return Err("no certificate in it (expected a PEM \"BEGIN CERTIFICATE\" block)".into());
    }
    Ok(chain)
}

/// The first private key in `pem` (PKCS#8, SEC1 or PKCS#1).
pub(super) fn parse_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => "no private key in it (expected a PEM \
             \"BEGIN PRIVATE KEY\", \"BEGIN EC PRIVATE KEY\" or \"BEGIN RSA PRIVATE KEY\" \
             block; encrypted keys are not supported)"
            .to_owned(),
        e => format!("not valid PEM: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::super::certificate::from_pem;
    use super::super::{generate, Origin};
    use super::*;

    #[test]
    fn pem_problems_are_described() {
        assert!(parse_chain(b"hello")
            .unwrap_err()
            .contains("no certificate"));
        let e = parse_chain(b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n")
            .unwrap_err();
        assert!(e.contains("not valid PEM"), "{e}");
        assert!(parse_key(b"").unwrap_err().contains("no private key"));
        // A certificate that is PEM but not DER.
        let junk = "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n";
        let (_, key) = generate("x", 1_700_000_000).unwrap();
        assert!(from_pem(junk.as_bytes(), key.as_bytes(), Origin::Configured).is_err());
        // A key of another certificate.
        let (cert, _) = generate("x", 1_700_000_000).unwrap();
        let e = from_pem(cert.as_bytes(), key.as_bytes(), Origin::Configured).unwrap_err();
        assert!(e.to_lowercase().contains("key"), "{e}");
    }
}
