//! HTTP routes: the page at `/`, device facts at `/api/info`, and the WebSocket upgrade at
//! `/signaling`. The page's files are compiled into the binary.

use std::sync::Arc;

use axum::extract::{State, WebSocketUpgrade};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::signaling::{HubStats, SignalingServer};

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
    pub camera: Option<Arc<crate::media::camera::CameraStats>>,
}

/// The router for the whole HTTP port.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/app.js", get(app_js))
        .route("/overlay.js", get(overlay_js))
        .route("/fullscreen.js", get(fullscreen_js))
        .route("/style.css", get(style_css))
        .route("/api/info", get(info))
        .route("/api/stats", get(stats))
        .route("/signaling", get(signaling))
        .with_state(state)
}

async fn index(State(state): State<AppState>) -> Html<String> {
    Html(include_str!("../web/index.html").replace("{{name}}", &html_escape(&state.info.name)))
}

async fn app_js() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../web/app.js"),
    )
}

async fn overlay_js() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../web/overlay.js"),
    )
}

async fn fullscreen_js() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../web/fullscreen.js"),
    )
}

async fn style_css() -> Response {
    asset("text/css; charset=utf-8", include_str!("../web/style.css"))
}

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
    camera: Option<crate::media::camera::CameraSnapshot>,
}

async fn stats(State(state): State<AppState>) -> Json<Stats> {
    Json(Stats {
        connections: state.signaling.connections(),
        hub: state.signaling.hub().stats(),
        camera: state.camera.as_ref().map(|c| c.snapshot()),
    })
}

async fn signaling(
    State(state): State<AppState>,
    headers: HeaderMap,
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
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
    state
        .signaling
        .clone()
        .upgrade(ws, text(header::ORIGIN), text(header::HOST))
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
