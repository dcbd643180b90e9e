//! `[publish]`: the media server the device publishes its stream to over WHIP (RFC 9725), and
//! the one reading of that server's URL every part of peercam uses: the configuration checks
//! it, the device's client connects by it, resolves the server's `Location` against it, and
//! shows it (without what could be a secret) in its log, `/api/stats` and `peercam check`.
//!
//! Pure: parsing and printing only; no socket, no DNS.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{KeyDoc, Section};

section! {
/// `[publish]`
pub struct PublishConfig {
    /// Publish the camera's stream to a media server's WHIP endpoint, which fans it out to its
    /// own viewers; the device sends one stream, however many watch there.
    pub enabled: bool,
    /// The WHIP endpoint, `http://` or `https://` (MediaMTX: `http://HOST:8889/NAME/whip`).
    pub url: Option<String>,
    /// The endpoint's Bearer token (a stream key), if it wants one; never logged or shown.
    pub token: Option<String>,
}
}

// Written out, like every section's defaults: `section!` writes the derives.
#[allow(clippy::derivable_impls)]
impl Default for PublishConfig {
    fn default() -> Self {
        PublishConfig {
            enabled: false,
            url: None,
            token: None,
        }
    }
}

/// Longest token accepted (a JWT with claims runs to a few hundred bytes).
pub const MAX_PUBLISH_TOKEN_LEN: usize = 4096;

impl PublishConfig {
    /// Why the section cannot be used (the key and a sentence), if it cannot.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        if let Some(url) = &self.url {
            WhipUrl::parse(url).map_err(|e| ("publish.url", e))?;
        } else if self.enabled {
            return Err((
                "publish.url",
                "must be set when publish.enabled is true".into(),
            ));
        }
        if let Some(token) = &self.token {
            check_publish_token(token).map_err(|e| ("publish.token", e))?;
        }
        Ok(())
    }

    /// The endpoint to publish to, when publishing is on (and the section was checked).
    pub fn endpoint(&self) -> Option<WhipUrl> {
        self.url
            .as_deref()
            .filter(|_| self.enabled)
            .and_then(|u| WhipUrl::parse(u).ok())
    }
}

/// Whether `token` can travel as `Authorization: Bearer TOKEN`: visible ASCII, no spaces.
pub fn check_publish_token(token: &str) -> Result<(), String> {
    if token.is_empty() {
        return Err("must not be empty (leave it out when the endpoint wants none)".into());
    }
    if token.len() > MAX_PUBLISH_TOKEN_LEN {
        return Err(format!(
            "must have at most {MAX_PUBLISH_TOKEN_LEN} characters"
        ));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("may hold only visible ASCII characters, without spaces".into());
    }
    Ok(())
}

/// An `http://` or `https://` URL as the WHIP client uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhipUrl {
    /// `https`.
    pub tls: bool,
    /// The host: a name, an IPv4 address, or an IPv6 address without its brackets.
    pub host: String,
    /// The port (80 or 443 unless the URL names one).
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl WhipUrl {
    /// Reads `url`; a sentence saying what is wrong otherwise.
    pub fn parse(url: &str) -> Result<WhipUrl, String> {
        if url
            .bytes()
            .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err("must not contain spaces or control characters".into());
        }
        let (tls, rest) = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => (true, rest),
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => (false, rest),
            _ => return Err("must start with http:// or https://".into()),
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        if authority.contains('@') {
            return Err(
                "must not carry a user name or password: put a Bearer token in publish.token"
                    .into(),
            );
        }
        let (host, port) = split_host_port(authority)?;
        let tail = tail.split('#').next().unwrap_or_default();
        let path = if tail.starts_with('/') {
            tail.to_owned()
        } else {
            format!("/{tail}")
        };
        Ok(WhipUrl {
            tls,
            port: port.unwrap_or(if tls { 443 } else { 80 }),
            host,
            path,
        })
    }

    /// The URL a `Location` header names, read against this one (absolute, `//host…`,
    /// `/path`, or relative to this URL's path).
    pub fn resolve(&self, location: &str) -> Result<WhipUrl, String> {
        let location = location.trim();
        if location.contains("://") {
            return WhipUrl::parse(location);
        }
        if let Some(rest) = location.strip_prefix("//") {
            let scheme = if self.tls { "https" } else { "http" };
            return WhipUrl::parse(&format!("{scheme}://{rest}"));
        }
        if location.is_empty() {
            return Err("the server named no session URL".into());
        }
        let path = if location.starts_with('/') {
            location.to_owned()
        } else {
            let dir = self.path.split('?').next().unwrap_or("/");
            let dir = &dir[..dir.rfind('/').map_or(0, |i| i + 1)];
            format!("{dir}{location}")
        };
        Ok(WhipUrl {
            path: remove_dot_segments(&path),
            ..self.clone()
        })
    }

    /// `host:port` as the `Host` header states it (the port only when it is not the scheme's).
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default = if self.tls { 443 } else { 80 };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// The whole URL, query included: for requests, never for the log.
    pub fn full(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{}", self.authority(), self.path)
    }

    /// The URL to show: scheme, host, port and path, without the query (a stream key may
    /// travel there).
    pub fn shown(&self) -> String {
        let path = self.path.split('?').next().unwrap_or("/");
        let query = if self.path.contains('?') { "?…" } else { "" };
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}{path}{query}", self.authority())
    }
}

impl fmt::Display for WhipUrl {
    /// As [`WhipUrl::shown`]: what may be logged.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown())
    }
}

/// The host and port of an authority (`host`, `host:port`, `[v6]`, `[v6]:port`).
fn split_host_port(authority: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or("has an IPv6 address without its closing `]`")?;
        if host.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("{host:?} is not an IPv6 address"));
        }
        match after {
            "" => (host, None),
            _ => (
                host,
                Some(after.strip_prefix(':').ok_or("has text after `]`")?),
            ),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, Some(p)),
            Some(_) => {
                return Err("must put an IPv6 address in brackets: http://[::1]:8889/".into())
            }
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("names no host".into());
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(format!("has {p:?} as its port")),
        },
    };
    Ok((host.to_owned(), port))
}

/// A path without `.` and `..` segments (RFC 3986, 5.2.4); the query is kept as it is.
fn remove_dot_segments(path: &str) -> String {
    let (path, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let last = segments.len().saturating_sub(1);
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            "." | ".." => {
                if *segment == ".." {
                    out.pop();
                }
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    let mut joined = format!("/{}", out.join("/"));
    if let Some(q) = query {
        joined.push('?');
        joined.push_str(q);
    }
    joined
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_read_with_their_defaults() {
        let u = WhipUrl::parse("http://10.0.0.5:8889/cam/whip").unwrap();
        assert_eq!(
            u,
            WhipUrl {
                tls: false,
                host: "10.0.0.5".into(),
                port: 8889,
                path: "/cam/whip".into()
            }
        );
        let u = WhipUrl::parse("HTTPS://ingress.example.net/w").unwrap();
        assert!(u.tls);
        assert_eq!((u.port, u.authority()), (443, "ingress.example.net".into()));
        let u = WhipUrl::parse("http://[fd00::7]:7080").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.path.as_str()),
            ("fd00::7", 7080, "/")
        );
        assert_eq!(u.authority(), "[fd00::7]:7080");
        let u = WhipUrl::parse("http://h/whip?key=s3cret#frag").unwrap();
        assert_eq!(u.path, "/whip?key=s3cret");
    }

    #[test]
    fn what_is_shown_leaves_out_the_query() {
        let u = WhipUrl::parse("https://h:8443/live/whip?streamKey=s3cret").unwrap();
        assert_eq!(u.shown(), "https://h:8443/live/whip?…");
        assert!(!u.to_string().contains("s3cret"));
        let u = WhipUrl::parse("http://h:80/whip").unwrap();
        assert_eq!(u.to_string(), "http://h/whip");
    }

    #[test]
    fn bad_urls_say_why() {
        let cases = [
            ("rtmp://h/live", "http:// or https://"),
            ("h:8889/whip", "http:// or https://"),
            ("http:///whip", "no host"),
            ("http://h:0/", "port"),
            ("http://h:99999/", "port"),
            ("http://h:x/", "port"),
            ("http://user:pw@h/whip", "publish.token"),
            ("http://fd00::1/whip", "brackets"),
            ("http://[nope]/whip", "IPv6"),
            ("http://h/wh ip", "spaces"),
        ];
        for (url, needle) in cases {
            let e = WhipUrl::parse(url).expect_err(url);
            assert!(e.contains(needle), "{url}: {e}");
        }
    }

    #[test]
    fn locations_resolve_against_the_endpoint() {
        let base = WhipUrl::parse("http://srv:7080/whip/endpoint/cam").unwrap();
        let r = |l: &str| base.resolve(l).map(|u| u.to_string());
        assert_eq!(
            r("/whip/resource/cam").unwrap(),
            "http://srv:7080/whip/resource/cam"
        );
        assert_eq!(
            r("resource/1").unwrap(),
            "http://srv:7080/whip/endpoint/resource/1"
        );
        assert_eq!(
            r("../resource/1").unwrap(),
            "http://srv:7080/whip/resource/1"
        );
        assert_eq!(r("./x").unwrap(), "http://srv:7080/whip/endpoint/x");
        assert_eq!(
            r("https://other:9000/s/1").unwrap(),
            "https://other:9000/s/1"
        );
        assert_eq!(r("//other/s/1").unwrap(), "http://other/s/1");
        assert!(r("").is_err());
        let full = WhipUrl::parse("https://srv:8443/a/whip?k=1").unwrap();
        assert_eq!(WhipUrl::parse(&full.full()).unwrap(), full);
        let with_query = WhipUrl::parse("http://srv/a/whip?k=1").unwrap();
        assert_eq!(
            with_query.resolve("session/2").unwrap().path,
            "/a/session/2"
        );
    }

    #[test]
    fn the_section_is_checked() {
        let on = |url: Option<&str>, token: Option<&str>| PublishConfig {
            enabled: true,
            url: url.map(Into::into),
            token: token.map(Into::into),
        };
        assert_eq!(PublishConfig::default().check(), Ok(()));
        assert_eq!(on(None, None).check().unwrap_err().0, "publish.url");
        assert_eq!(
            on(Some("ftp://x"), None).check().unwrap_err().0,
            "publish.url"
        );
        assert_eq!(
            on(Some("http://x/whip"), Some("two words"))
                .check()
                .unwrap_err()
                .0,
            "publish.token"
        );
        assert_eq!(
            on(Some("http://x/whip"), Some("")).check().unwrap_err().0,
            "publish.token"
        );
        assert_eq!(
            on(Some("http://x/whip"), Some("k3y.-_~+/=")).check(),
            Ok(())
        );
        assert!(on(Some("http://x/whip"), None).endpoint().is_some());
        let off = PublishConfig {
            enabled: false,
            ..on(Some("http://x/whip"), None)
        };
        assert_eq!(off.endpoint(), None);
    }
}
