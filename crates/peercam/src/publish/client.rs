//! The WHIP client's HTTP: one request per connection (plain TCP, or TLS with the system's
//! certificate authorities), `Authorization: Bearer` when a token is set, the answer's body
//! read up to a bound. Thin: it sends what it is told and reports what came back; what to do
//! about it is the policy's.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use peercam_wire::config::WhipUrl;

use super::Target;

/// Largest answer read: an SDP answer with candidates is a few KiB.
const MAX_BODY: usize = 64 * 1024;

/// Most redirects followed for one offer.
const MAX_REDIRECTS: usize = 3;

/// Longest part of a server's error body kept for the log and `/api/stats`.
const MAX_ERROR_TEXT: usize = 300;

/// Where the system's certificate authorities are (Debian's ca-certificates), unless
/// `SSL_CERT_FILE` names another file.
const CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// What came back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// `Location`, as written.
    pub location: Option<String>,
    /// `Content-Type`, as written.
    pub content_type: Option<String>,
    /// The body, as text (bytes that are not UTF-8 replaced).
    pub body: String,
}

impl Reply {
    /// The status and the start of the body, as a sentence for the log.
    pub fn describe(&self) -> String {
        let text: String = self
            .body
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(MAX_ERROR_TEXT)
            .collect();
        let text = text.trim();
        if text.is_empty() {
            format!("the server answered {}", self.status)
        } else {
            format!("the server answered {}: {text}", self.status)
        }
    }
}

/// The server's answer to an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The SDP answer.
    pub sdp: String,
    /// The session's URL, absolute (read against the URL that answered).
    pub location: Option<String>,
}

/// Sends the device's requests to one endpoint.
#[derive(Clone)]
pub struct Client {
    /// The endpoint and its token.
    target: Arc<Target>,
}

impl Client {
    /// A client of `target`.
    pub fn new(target: Target) -> Client {
        Client {
            target: Arc::new(target),
        }
    }

    /// `POST`s `offer`, following the endpoint's redirects (a cluster sends a client to the
    /// node that takes it); the answer, its session URL made absolute, or why not in a
    /// sentence.
    pub async fn post_offer(&self, offer: String, within: Duration) -> Result<Answer, String> {
        let deadline = tokio::time::Instant::now() + within;
        let mut url = self.target.url.clone();
        let mut redirects = 0;
        let reply = loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let reply = self
                .send(Method::POST, &url, Some(offer.clone()), left)
                .await?;
            let redirect = matches!(
                reply.status,
                StatusCode::TEMPORARY_REDIRECT | StatusCode::PERMANENT_REDIRECT
            );
            let Some(location) = reply.location.as_deref().filter(|_| redirect) else {
                break reply;
            };
            redirects += 1;
            if redirects > MAX_REDIRECTS {
                return Err(format!("more than {MAX_REDIRECTS} redirects"));
            }
            let next = url
                .resolve(location)
                .map_err(|e| format!("the server redirected to {location:?}: {e}"))?;
            if url.tls && !next.tls {
                // The token would travel in the clear.
                return Err(format!("the server redirected from https to {next}"));
            }
            log::info!("publishing: {} redirects to {next}", url);
            url = next;
        };
        if reply.status != StatusCode::CREATED {
            return Err(reply.describe());
        }
        if !reply
            .content_type
            .as_deref()
            .is_some_and(|t| t.trim().to_ascii_lowercase().starts_with("application/sdp"))
        {
            return Err(format!(
                "the server answered 201 with {:?} instead of application/sdp",
                reply.content_type.unwrap_or_default()
            ));
        }
        // Read against the URL that answered, which a redirect may have changed.
        let location = match reply.location.as_deref().map(|l| url.resolve(l)) {
            Some(Ok(session)) => Some(session.full()),
            Some(Err(e)) => {
                log::warn!("publishing: the server's session URL cannot be used: {e}");
                None
            }
            None => None,
        };
        Ok(Answer {
            sdp: reply.body,
            location,
        })
    }

    /// `DELETE`s the session at `location` (as [`Answer::location`] gives it); the reply, or
    /// why none.
    pub async fn delete(&self, location: &str, within: Duration) -> Result<Reply, String> {
        let url = self
            .target
            .url
            .resolve(location)
            .map_err(|e| format!("the session URL {location:?}: {e}"))?;
        self.send(Method::DELETE, &url, None, within).await
    }

    /// `OPTIONS` on the endpoint: whether it answers at all, and how.
    pub async fn options(&self, within: Duration) -> Result<Reply, String> {
        self.send(Method::OPTIONS, &self.target.url, None, within)
            .await
    }

    /// One request on a connection of its own, all within `within`.
    async fn send(
        &self,
        method: Method,
        url: &WhipUrl,
        sdp: Option<String>,
        within: Duration,
    ) -> Result<Reply, String> {
        let request = self.request(method, url, sdp)?;
        let exchange = async {
            let tcp = TcpStream::connect((url.host.as_str(), url.port))
                .await
                .map_err(|e| format!("cannot connect to {}: {e}", url.authority()))?;
            let _ = tcp.set_nodelay(true);
            if url.tls {
                let name = rustls_pki_types::ServerName::try_from(url.host.clone())
                    .map_err(|e| format!("{:?} cannot be checked by TLS: {e}", url.host))?;
                let tls = tokio_rustls::TlsConnector::from(tls_config()?)
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS with {}: {e}", url.authority()))?;
                exchange(tls, request).await
            } else {
                exchange(tcp, request).await
            }
        };
        tokio::time::timeout(within, exchange)
            .await
            .map_err(|_| format!("no answer from {} within {within:?}", url.authority()))?
    }

    /// The request, with its headers.
    fn request(
        &self,
        method: Method,
        url: &WhipUrl,
        sdp: Option<String>,
    ) -> Result<Request<Full<Bytes>>, String> {
        let mut builder = Request::builder()
            .method(method)
            .uri(url.path.as_str())
            .header(header::HOST, url.authority())
            .header(
                header::USER_AGENT,
                concat!("peercam/", env!("CARGO_PKG_VERSION")),
            )
            // One request per connection: a session makes three at most.
            .header(header::CONNECTION, "close");
        if let Some(token) = &self.target.token {
            // The configuration allows only visible ASCII, which a header value can hold.
            let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| "publish.token cannot be sent as a header".to_owned())?;
            value.set_sensitive(true);
            builder = builder.header(header::AUTHORIZATION, value);
        }
        let body = match sdp {
            Some(sdp) => {
                builder = builder
                    .header(header::CONTENT_TYPE, "application/sdp")
                    .header(header::ACCEPT, "application/sdp");
                Full::new(Bytes::from(sdp))
            }
            None => Full::new(Bytes::new()),
        };
        builder
            .body(body)
            .map_err(|e| format!("the request to {url}: {e}"))
    }
}

/// Sends `request` over `stream` and reads the reply.
async fn exchange<S>(stream: S, request: Request<Full<Bytes>>) -> Result<Reply, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("HTTP: {e}"))?;
    // The connection is driven beside the request; it ends with it (or is dropped with the
    // runtime).
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("HTTP: {e}"))?;
        let (parts, body) = response.into_parts();
        let text = |name| {
            parts
                .headers
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_owned)
        };
        let (location, content_type) = (text(header::LOCATION), text(header::CONTENT_TYPE));
        let bytes = Limited::new(body, MAX_BODY)
            .collect()
            .await
            .map_err(|e| format!("reading the server's answer: {e}"))?
            .to_bytes();
        Ok(Reply {
            status: parts.status,
            location,
            content_type,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        })
    }
    .await;
    driver.abort();
    result
}

/// The TLS client settings: the system's certificate authorities, read once.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG.get_or_init(load_tls_config).clone()
}

fn load_tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls_pki_types::pem::PemObject;
    let path = std::env::var("SSL_CERT_FILE").unwrap_or_else(|_| CA_BUNDLE.into());
    let mut roots = rustls::RootCertStore::empty();
    let certs = rustls_pki_types::CertificateDer::pem_file_iter(&path)
        .map_err(|e| format!("reading the certificate authorities in {path}: {e}"))?;
    for cert in certs.flatten() {
        // A certificate the store cannot take is skipped, as every TLS client does.
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err(format!(
            "no certificate authorities in {path} (install ca-certificates)"
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_reply_is_one_short_line() {
        let reply = Reply {
            status: StatusCode::SERVICE_UNAVAILABLE,
            location: None,
            content_type: None,
            body: format!("Janus\r\nunavailable{}", "!".repeat(1000)),
        };
        let said = reply.describe();
        assert!(
            said.starts_with("the server answered 503 Service Unavailable: Janus  unavailable!"),
            "{said}"
        );
        assert!(!said.contains('\n') && said.len() < 400, "{said}");
        let empty = Reply {
            body: " \n".into(),
            ..reply
        };
        assert_eq!(
            empty.describe(),
            "the server answered 503 Service Unavailable"
        );
    }
}
