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

#[cfg(test)]
mod tests {
    use super::*;

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
