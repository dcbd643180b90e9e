//! HTTP routes: the page at `/`, device facts at `/api/info`, the other cameras on the LAN at
//! `/api/cameras`, the WebSocket upgrade at `/signaling`, the WHEP door at `/whep`
//! (`crate::whep`), and the camera's still picture at `/snapshot.jpg` (`crate::snapshot`). The
//! page's files are compiled into the binary. Every route is behind the access check
//! (`crate::gate`).

use std::sync::{Arc, Mutex};

use axum::extract::{Extension, State, WebSocketUpgrade};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::access::Access;
use crate::net::Peer;
use crate::signaling::{Admission, HubStats, SignalingServer};

/// What `/api/info` reports.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceInfo {
    /// Device name.
    pub name: String,
    /// peercam version.
    pub version: &'static str,
    /// The camera's standing conversation.
    pub conversation: String,
    /// Signaling endpoint path.
    pub signaling: &'static str,
    /// Whether the port answers https and wss as well as http.
    pub tls: bool,
    /// SHA-256 of the TLS certificate, uppercase hex pairs joined by colons (what browsers
    /// show as the certificate's fingerprint); `null` without TLS.
    pub fingerprint: Option<String>,
}

/// Shared state of the HTTP routes.
#[derive(Clone)]
pub struct AppState {
    /// Signaling endpoint.
    pub signaling: Arc<SignalingServer>,
    /// Static facts about the device.
    pub info: Arc<DeviceInfo>,
    /// The camera peer's counts, when it runs.
    pub camera: Option<Arc<crate::camera::CameraStats>>,
    /// Tells the camera someone is opening the page (see [`CameraHandle::primer`]).
    ///
    /// [`CameraHandle::primer`]: crate::camera::CameraHandle::primer
    pub primer: Option<Arc<tokio::sync::Notify>>,
    /// The WHEP door into the camera, when it runs.
    pub whep: Option<crate::whep::Door>,
    /// The other cameras on the LAN, while the device browses for them.
    pub neighbours: Option<Arc<Mutex<crate::discovery::Neighbours>>>,
    /// Who may use the routes.
    pub access: Arc<Access>,
    /// The camera's still pictures, when it runs.
    pub snapshots: Option<Arc<crate::snapshot::Snapshots>>,
}

impl AppState {
    fn prime(&self) {
        if let Some(p) = &self.primer {
            p.notify_one();
        }
    }
}

/// The router for the whole HTTP port.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new().route("/", get(index));
    for &(path, content_type, body) in ASSETS {
        router = router.route(path, get(move || async move { asset(content_type, body) }));
    }
    let access = state.access.clone();
    router
        .route("/api/info", get(info))
        .route("/api/stats", get(stats))
        .route("/api/cameras", get(cameras))
        .route("/api/share", get(share))
        .route("/api/share.svg", get(share_svg))
        .route("/signaling", get(signaling))
        .merge(crate::whep::routes())
        .route("/snapshot.jpg", get(crate::snapshot::snapshot_jpg))
        .layer(axum::middleware::from_fn_with_state(
            access,
            crate::gate::guard,
        ))
        .layer(axum::middleware::from_fn(crate::whep::cors))
        .with_state(state)
}

async fn index(State(state): State<AppState>) -> Html<String> {
    // A viewer is likely to join within ~100 ms.
    state.prime();
    Html(fill(
        include_str!("../../../web/index.html"),
        &[
            ("{{name}}", &html_escape(&state.info.name)),
            ("{{info}}", &script_json(&state.info)),
        ],
    ))
}

/// `template` with each marker replaced, in one pass: text filled in is never read again for
/// markers (a device named `{{info}}` stays a name).
fn fill(template: &str, values: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(template.len() + 512);
    let mut rest = template;
    while let Some((at, (marker, value))) = values
        .iter()
        .filter_map(|mv| rest.find(mv.0).map(|at| (at, mv)))
        .min_by_key(|(at, _)| *at)
    {
        out.push_str(&rest[..at]);
        out.push_str(value);
        rest = &rest[at + marker.len()..];
    }
    out.push_str(rest);
    out
}

/// `/api/info` inside the page, so the page need not ask for it before it connects. Safe in
/// a `<script>` element: `<` is escaped, so no text in it can close the element.
fn script_json(info: &DeviceInfo) -> String {
    serde_json::to_string(info)
        .unwrap_or_else(|_| "null".to_owned())
        .replace('<', "\\u003c")
}

/// `(route, content type, contents)` of the page's file `web/NAME`, served at `/NAME`.
macro_rules! page_file {
    ($name:literal, $content_type:expr) => {
        (
            concat!("/", $name),
            $content_type,
            include_str!(concat!("../../../web/", $name)),
        )
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// The page's files besides the page itself. app.js is the module index.html loads; it
/// imports the others (index.html preloads them too).
const ASSETS: &[(&str, &str, &str)] = &[
    page_file!("app.js", JS),
    page_file!("signaling.js", JS),
    page_file!("session.js", JS),
    page_file!("peers.js", JS),
    page_file!("media.js", JS),
    page_file!("view.js", JS),
    page_file!("timing.js", JS),
    page_file!("cameras.js", JS),
    page_file!("share.js", JS),
    page_file!("talk.js", JS),
    page_file!("testhooks.js", JS),
    page_file!("overlay.js", JS),
    page_file!("fullscreen.js", JS),
    page_file!("style.css", "text/css; charset=utf-8"),
];

/// A file of the page. `no-cache` makes browsers revalidate, so a device that was updated
/// never runs a new page with an old script.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn info(State(state): State<AppState>) -> Json<DeviceInfo> {
    Json((*state.info).clone())
}

#[derive(Serialize)]
struct Stats {
    connections: usize,
    #[serde(flatten)]
    hub: HubStats,
    camera: Option<crate::camera::CameraSnapshot>,
    /// Viewers watching through the WHEP door (`null` without a camera).
    whep_viewers: Option<usize>,
    /// Process ids of the media workers.
    workers: Option<Workers>,
    /// The WHIP publisher (`null` when the device does not publish).
    publish: Option<crate::publish::Status>,
}

#[derive(Serialize)]
struct Workers {
    /// The worker serving the current peers.
    active: Option<u32>,
    /// The worker waiting for the next session.
    spare: Option<u32>,
}

async fn stats(State(state): State<AppState>) -> Json<Stats> {
    Json(Stats {
        connections: state.signaling.connections(),
        hub: state.signaling.hub().stats(),
        camera: state.camera.as_ref().map(|c| c.snapshot()),
        whep_viewers: state
            .camera
            .as_ref()
            .map(|c| c.whep_viewers.load(std::sync::atomic::Ordering::Relaxed)),
        workers: state.camera.as_ref().map(|c| {
            let (active, spare) = c.worker_pids();
            Workers { active, spare }
        }),
        publish: state.camera.as_ref().and_then(|c| c.publish()),
    })
}

/// What `/api/share` gives the page's Share control.
#[derive(Serialize)]
struct Share {
    /// The link to open the camera, as the person asking reached it, with the token when one
    /// is needed.
    link: String,
    /// Its QR code, an SVG document.
    svg: String,
}

/// The link to share, and its QR code, for a request from `peer` that named `headers`' Host;
/// else why not, in words.
fn share_of(
    state: &AppState,
    peer: Option<&Peer>,
    headers: &HeaderMap,
) -> Result<Share, &'static str> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let token = state.access.token();
    let tls = peer.is_some_and(|p| p.tls);
    let link = crate::share::link_for_host(tls, host, token.as_ref().map(|t| t.reveal()))
        .ok_or("no usable Host header\n")?;
    let svg = crate::share::qr_svg(&link).ok_or("the link is too long for a QR code\n")?;
    Ok(Share { link, svg })
}

/// Must not be kept: it carries the token, which a rotation replaces.
const NO_STORE: (header::HeaderName, &str) = (header::CACHE_CONTROL, "no-store");

async fn share(
    State(state): State<AppState>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
) -> Response {
    match share_of(&state, peer.as_deref(), &headers) {
        Ok(share) => ([NO_STORE], Json(share)).into_response(),
        Err(why) => (StatusCode::BAD_REQUEST, why).into_response(),
    }
}

async fn share_svg(
    State(state): State<AppState>,
    peer: Option<Extension<Peer>>,
    headers: HeaderMap,
) -> Response {
    match share_of(&state, peer.as_deref(), &headers) {
        Ok(share) => (
            [(header::CONTENT_TYPE, "image/svg+xml"), NO_STORE],
            share.svg,
        )
            .into_response(),
        Err(why) => (StatusCode::BAD_REQUEST, why).into_response(),
    }
}

/// What `/api/cameras` reports.
#[derive(Serialize)]
struct Cameras {
    /// Whether the device browses the LAN (discovery on); without it the list stays empty.
    browsing: bool,
    /// The other cameras seen, by name.
    cameras: Vec<crate::discovery::FoundCamera>,
}

async fn cameras(State(state): State<AppState>) -> Json<Cameras> {
    Json(Cameras {
        browsing: state.neighbours.is_some(),
        cameras: state
            .neighbours
            .as_ref()
            .map(|n| n.lock().unwrap_or_else(|e| e.into_inner()).list())
            .unwrap_or_default(),
    })
}

async fn signaling(
    State(state): State<AppState>,
    headers: HeaderMap,
    admission: Option<Extension<Admission>>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let ws = match ws {
        Ok(ws) => ws,
        Err(_) => {
            return (
                StatusCode::UPGRADE_REQUIRED,
                [(header::UPGRADE, "websocket")],
                "this is the nextRTC signaling endpoint; connect with a WebSocket\n",
            )
                .into_response()
        }
    };
    let admission = admission.map_or(Admission::Open, |Extension(a)| a);
    if !matches!(admission, Admission::Refused(..)) {
        state.prime();
    }
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    state
        .signaling
        .clone()
        .upgrade(ws, text(header::ORIGIN), text(header::HOST), admission)
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file the page loads, imports or preloads by absolute path (`'/x.js'`,
    /// `"/style.css"`), in the page and in its scripts.
    fn referenced_files() -> Vec<String> {
        let page = include_str!("../../../web/index.html");
        let mut found = Vec::new();
        for text in std::iter::once(page).chain(ASSETS.iter().map(|a| a.2)) {
            for quote in ['\'', '"'] {
                let opening = format!("{quote}/");
                for (at, _) in text.match_indices(&opening) {
                    let rest = &text[at + 1..];
                    let Some(end) = rest[1..].find(quote) else {
                        continue;
                    };
                    let path = &rest[..end + 1];
                    let plain = path
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c));
                    if plain && (path.ends_with(".js") || path.ends_with(".css")) {
                        found.push(path.to_owned());
                    }
                }
            }
        }
        found
    }

    #[test]
    fn every_file_the_page_loads_has_a_route() {
        let files = referenced_files();
        for must in ["/app.js", "/style.css", "/view.js", "/fullscreen.js"] {
            assert!(
                files.iter().any(|f| f == must),
                "{must} not found in {files:?}"
            );
        }
        for file in &files {
            assert!(
                ASSETS.iter().any(|a| a.0 == file),
                "{file} is loaded by the page but has no route"
            );
        }
    }

    #[test]
    fn markers_are_filled_once() {
        let out = fill(
            "<h1>{{name}}</h1><script>{{info}}</script>{{name}}",
            &[("{{name}}", "{{info}}"), ("{{info}}", "{}")],
        );
        assert_eq!(out, "<h1>{{info}}</h1><script>{}</script>{{info}}");
    }

    #[test]
    fn the_info_in_the_page_cannot_close_its_script_element() {
        let info = DeviceInfo {
            name: "cam</script><script>alert(1)</script>".into(),
            version: "0",
            conversation: "camera".into(),
            signaling: "/signaling",
            tls: false,
            fingerprint: None,
        };
        let json = script_json(&info);
        assert!(!json.contains('<'), "{json}");
        let back: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back["name"], "cam</script><script>alert(1)</script>");
    }
}
