//! The access token itself: making one (32 bytes from the operating system's CSPRNG, as 64
//! hex digits), reading one back (from the token file or the configuration), comparing what
//! a request presents with it in constant time, the value of the session cookie derived from
//! it, and taking tokens out of text that is about to be logged.
//!
//! It must not do I/O beyond asking the OS for random bytes, and must never show a token in
//! its `Debug` output.

use std::borrow::Cow;

use subtle::ConstantTimeEq;

/// Random bytes in a generated token: 256 bits.
const TOKEN_BYTES: usize = 32;

/// What the session cookie is derived with, so the cookie is not the token itself.
const COOKIE_CONTEXT: &[u8] = b"peercam session cookie v1\0";

/// The device's access token. `Debug` shows no part of it.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// A new random token.
    pub fn generate() -> Result<Token, getrandom::Error> {
        let mut bytes = [0u8; TOKEN_BYTES];
        getrandom::fill(&mut bytes)?;
        Ok(Token(hex(&bytes)))
    }

    /// `text` (surrounding whitespace ignored, e.g. a file's newline) as a token, if it is one
    /// (see [`peercam_wire::config::check_token`]); why not otherwise.
    pub fn parse(text: &str) -> Result<Token, String> {
        let text = text.trim();
        peercam_wire::config::check_token(text)?;
        Ok(Token(text.to_owned()))
    }

    /// The token's text, for the owner's link and nothing else.
    pub fn reveal(&self) -> &str {
        &self.0
    }

    /// Whether `presented` is this token, in time that does not depend on where they differ.
    pub fn matches(&self, presented: &str) -> bool {
        self.0.as_bytes().ct_eq(presented.as_bytes()).into()
    }

    /// The session cookie's value for this token: a SHA-256 of it, so a cookie that leaks
    /// (a browser profile copied) does not give the token for other uses, and a new token
    /// makes every old cookie worthless.
    pub fn cookie_value(&self) -> String {
        let mut input = COOKIE_CONTEXT.to_vec();
        input.extend_from_slice(self.0.as_bytes());
        hex(ring::digest::digest(&ring::digest::SHA256, &input).as_ref())
    }

    /// Whether `presented` is this token's cookie value, in constant time.
    pub fn matches_cookie(&self, presented: &str) -> bool {
        self.cookie_value()
            .as_bytes()
            .ct_eq(presented.as_bytes())
            .into()
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// What logged text shows in place of a token.
pub const REDACTED: &str = "[redacted]";

/// `text` with the value of every `token=` (a query parameter, any case) and every
/// `Bearer` credential replaced by [`REDACTED`]: for request lines and URLs that are logged.
pub fn redact(text: &str) -> Cow<'_, str> {
    let lower = text.to_ascii_lowercase();
    if !lower.contains("token=") && !lower.contains("bearer ") {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while at < text.len() {
        let rest = &lower[at..];
        let next = ["token=", "bearer "]
            .iter()
            .filter_map(|k| rest.find(k).map(|i| (i, k.len())))
            .min();
        let Some((i, len)) = next else {
            out.push_str(&text[at..]);
            break;
        };
        let value_start = at + i + len;
        out.push_str(&text[at..value_start]);
        let value_len = text[value_start..]
            .find(['&', '#', ' ', '"', '\'', '\r', '\n', '\t'])
            .unwrap_or(text.len() - value_start);
        if value_len > 0 {
            out.push_str(REDACTED);
        }
        at = value_start + value_len;
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_are_long_random_and_valid() {
        let a = Token::generate().unwrap();
        let b = Token::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.reveal().len(), 64);
        assert!(a.reveal().bytes().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(Token::parse(a.reveal()).unwrap(), a);
        assert_eq!(format!("{a:?}"), "Token(..)");
    }

    #[test]
    fn parsing_trims_and_refuses_what_is_not_a_token() {
        let t = "abcdefghijklmnopqrstuvwxyz012345-_.";
        assert_eq!(Token::parse(&format!("  {t}\n")).unwrap().reveal(), t);
        assert!(Token::parse("short").unwrap_err().contains("at least 32"));
        assert!(Token::parse(&format!("{t} {t}")).is_err());
        assert!(Token::parse("").is_err());
    }

    #[test]
    fn only_the_exact_token_matches() {
        let t = Token::parse(&"a".repeat(40)).unwrap();
        assert!(t.matches(&"a".repeat(40)));
        assert!(!t.matches(&"a".repeat(39)));
        assert!(!t.matches(&"a".repeat(41)));
        assert!(!t.matches(&format!("{}b", "a".repeat(39))));
        assert!(!t.matches(""));
    }

    #[test]
    fn the_cookie_follows_the_token_and_is_not_the_token() {
        let t = Token::parse(&"a".repeat(40)).unwrap();
        let u = Token::parse(&"b".repeat(40)).unwrap();
        let cookie = t.cookie_value();
        assert_eq!(cookie.len(), 64);
        assert!(!cookie.contains(t.reveal()));
        assert!(t.matches_cookie(&cookie));
        assert!(!u.matches_cookie(&cookie));
        assert!(!t.matches(&cookie));
        assert!(!t.matches_cookie(t.reveal()));
    }

    #[test]
    fn redaction_hides_every_token_and_keeps_the_rest() {
        assert_eq!(redact("/api/info"), "/api/info");
        assert_eq!(
            redact("/?room=a&token=s3cret&stats=1"),
            "/?room=a&token=[redacted]&stats=1"
        );
        assert_eq!(
            redact("GET /signaling?TOKEN=abc HTTP/1.1"),
            "GET /signaling?TOKEN=[redacted] HTTP/1.1"
        );
        assert_eq!(
            redact("/?token=a&token=b"),
            "/?token=[redacted]&token=[redacted]"
        );
        assert_eq!(redact("/?token="), "/?token=");
        assert_eq!(
            redact("Authorization: Bearer abc.def"),
            "Authorization: Bearer [redacted]"
        );
        assert_eq!(
            redact("\"wss://h/signaling?token=x\""),
            "\"wss://h/signaling?token=[redacted]\""
        );
    }
}
