//! The link a person opens: scheme, the device's host and port, and the token, e.g.
//! `https://porch.local:8080/?token=...`. A device listening on every address is named by its
//! mDNS host name, never by `0.0.0.0`.
//!
//! Pure: it must not log (the one start-up line that shows the link is the caller's).

use std::net::{IpAddr, SocketAddr};

use super::token::Token;
use crate::discovery::host_label;

/// The host part of the device's URL: `<name>.local` when it listens on every address, else
/// the address it listens on.
pub fn host(name: &str, listen: SocketAddr) -> String {
    match listen.ip() {
        ip if ip.is_unspecified() => format!("{}.local", host_label(name)),
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) => v4.to_string(),
    }
}

/// The page's URL, with `?token=` when a token is needed.
pub fn link(name: &str, listen: SocketAddr, tls: bool, token: Option<&Token>) -> String {
    let scheme = if tls { "https" } else { "http" };
    let host = host(name, listen);
    let port = listen.port();
    match token {
        Some(token) => format!("{scheme}://{host}:{port}/?token={}", token.reveal()),
        None => format!("{scheme}://{host}:{port}/"),
    }
}

/// The links by address for a device listening on every address (`listen` unspecified):
/// one per LAN address in `addresses` (IPv4 first, loopback and link-local left out, as no
/// other machine can open them). Empty for a device listening on one address: its
/// [`link`] is by address already. For phones and machines that do not resolve `.local`.
pub fn by_address(
    listen: SocketAddr,
    tls: bool,
    token: Option<&Token>,
    addresses: &[IpAddr],
) -> Vec<String> {
    if !listen.ip().is_unspecified() {
        return Vec::new();
    }
    let mut usable: Vec<IpAddr> = addresses
        .iter()
        .copied()
        .filter(|a| !a.is_loopback() && !a.is_unspecified() && !is_link_local(a))
        .collect();
    usable.sort_by_key(|a| (a.is_ipv6(), *a));
    usable.dedup();
    usable
        .into_iter()
        .map(|a| link("", SocketAddr::new(a, listen.port()), tls, token))
        .collect()
}

fn is_link_local(a: &IpAddr) -> bool {
    match a {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_lan_address_gets_a_link_ipv4_first() {
        let t = Token::parse(&"b".repeat(32)).unwrap();
        let any = "0.0.0.0:8080".parse().unwrap();
        let addresses: Vec<IpAddr> = [
            "2001:db8::5",
            "127.0.0.1",
            "192.0.2.7",
            "169.254.1.1",
            "fe80::1",
            "192.0.2.7",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        let tok = "b".repeat(32);
        assert_eq!(
            by_address(any, true, Some(&t), &addresses),
            [
                format!("https://192.0.2.7:8080/?token={tok}"),
                format!("https://[2001:db8::5]:8080/?token={tok}"),
            ]
        );
        // Listening on one address: the link is by that address already.
        let one = "192.0.2.7:8080".parse().unwrap();
        assert!(by_address(one, true, Some(&t), &addresses).is_empty());
        assert!(!by_address(any, false, None, &addresses)
            .iter()
            .any(|l| l.contains("0.0.0.0")));
    }

    #[test]
    fn the_link_names_the_device_never_the_wildcard() {
        let t = Token::parse(&"a".repeat(32)).unwrap();
        let any = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(
            link("Porch Cam", any, true, Some(&t)),
            format!("https://porch-cam.local:8080/?token={}", "a".repeat(32))
        );
        assert_eq!(
            link("peercam", any, false, None),
            "http://peercam.local:8080/"
        );
        let any6 = "[::]:81".parse().unwrap();
        assert_eq!(
            link("peercam", any6, false, None),
            "http://peercam.local:81/"
        );
        let lo = "127.0.0.1:9000".parse().unwrap();
        assert_eq!(link("x", lo, false, None), "http://127.0.0.1:9000/");
        let v6 = "[fe80::1]:9000".parse().unwrap();
        assert_eq!(link("x", v6, true, None), "https://[fe80::1]:9000/");
    }
}
