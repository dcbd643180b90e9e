//! Where a request's credentials come from: the `token` query parameter (what an unmodified
//! nextRTC client can send: `ws://host/signaling?token=...`), an `Authorization: Bearer`
//! header, and the session cookie the device sets once it has seen a valid token. Also the
//! `Set-Cookie` value that carries that session.
//!
//! Pure text handling: it must not judge a credential (that is [`super::Access`]'s) nor log.

/// The session cookie's name.
pub const COOKIE_NAME: &str = "peercam_session";

/// How long a browser keeps the session cookie: a year, so a bookmark keeps working.
const COOKIE_MAX_AGE_SECS: u64 = 365 * 24 * 3600;

/// What one request presents, each as it came.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Credentials<'a> {
    /// The first `token` query parameter.
    pub query: Option<&'a str>,
    /// The `Authorization: Bearer` value.
    pub bearer: Option<&'a str>,
    /// Every `peercam_session` cookie value (a browser may send more than one).
    pub cookies: Vec<&'a str>,
}

impl<'a> Credentials<'a> {
    /// Reads the credentials from a request's query string, its `Authorization` headers and
    /// its `Cookie` headers.
    pub fn from_parts(
        query: Option<&'a str>,
        authorization: impl IntoIterator<Item = &'a str>,
        cookie_headers: impl IntoIterator<Item = &'a str>,
    ) -> Self {
        Credentials {
            query: query.and_then(query_token),
            bearer: authorization.into_iter().find_map(bearer),
            cookies: cookie_headers
                .into_iter()
                .flat_map(|h| h.split(';'))
                .filter_map(|pair| {
                    let (name, value) = pair.trim().split_once('=')?;
                    (name.trim() == COOKIE_NAME).then(|| value.trim().trim_matches('"'))
                })
                .collect(),
        }
    }

    /// Whether anything was presented at all (an empty value counts as nothing).
    pub fn presented(&self) -> bool {
        self.query.is_some_and(|q| !q.is_empty())
            || self.bearer.is_some_and(|b| !b.is_empty())
            || self.cookies.iter().any(|c| !c.is_empty())
    }
}

/// The value of the first `token` parameter of a query string. Tokens are made only of
/// characters a URL carries unescaped, so the value is taken as it is.
pub fn query_token(query: &str) -> Option<&str> {
    query.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        (name == "token").then_some(value)
    })
}

/// The credential of an `Authorization: Bearer ...` header value (scheme in any case).
fn bearer(header: &str) -> Option<&str> {
    let (scheme, value) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(value.trim())
}

/// A query string without its `token` parameters, `None` when nothing else is left: where
/// the page goes once its token has become a cookie.
pub fn without_token(query: &str) -> Option<String> {
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| !pair.is_empty() && pair.split('=').next() != Some("token"))
        .collect();
    (!kept.is_empty()).then(|| kept.join("&"))
}

/// The `Set-Cookie` value giving a browser the session `value`: sent back only to this
/// device (no Domain), to no script (HttpOnly), never with a request another site starts
/// (SameSite=Strict), and over https only when the page came over https (Secure).
pub fn set_cookie(value: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{COOKIE_NAME}={value}; Path=/; Max-Age={COOKIE_MAX_AGE_SECS}; HttpOnly; SameSite=Strict{secure}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_read_from_the_query_the_header_or_the_cookie() {
        let c = Credentials::from_parts(Some("room=a&token=abc&x"), [], []);
        assert_eq!(c.query, Some("abc"));
        assert!(c.presented());
        let c = Credentials::from_parts(None, ["Bearer  xyz "], []);
        assert_eq!(c.bearer, Some("xyz"));
        let c = Credentials::from_parts(None, ["bearer xyz"], []);
        assert_eq!(c.bearer, Some("xyz"));
        let c = Credentials::from_parts(None, ["Basic dXNlcjpwYXNz"], []);
        assert_eq!(c.bearer, None);
        let c = Credentials::from_parts(
            None,
            [],
            ["theme=dark; peercam_session=c1", "peercam_session=\"c2\""],
        );
        assert_eq!(c.cookies, vec!["c1", "c2"]);
        let c = Credentials::from_parts(Some("tokens=abc&xtoken=1"), [], ["other=1"]);
        assert_eq!(c, Credentials::default());
        assert!(!c.presented());
        assert!(!Credentials::from_parts(Some("token="), [], []).presented());
    }

    #[test]
    fn the_first_token_parameter_counts() {
        assert_eq!(query_token("token=a&token=b"), Some("a"));
        assert_eq!(query_token("token"), Some(""));
        assert_eq!(query_token(""), None);
    }

    #[test]
    fn the_query_loses_only_its_token() {
        assert_eq!(without_token("token=a"), None);
        assert_eq!(
            without_token("room=x&token=a&stats=1").as_deref(),
            Some("room=x&stats=1")
        );
        assert_eq!(without_token("room=x").as_deref(), Some("room=x"));
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_over_https() {
        let c = set_cookie("v", true);
        assert!(c.starts_with("peercam_session=v; Path=/; "), "{c}");
        for attr in ["HttpOnly", "SameSite=Strict", "Secure", "Max-Age="] {
            assert!(c.contains(attr), "{c} lacks {attr}");
        }
        assert!(!set_cookie("v", false).contains("Secure"));
    }
}
