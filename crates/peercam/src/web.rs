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
    pub camera: Option<Arc<crate::camera::CameraStats>>,
    /// Tells the camera someone is opening the page (see [`CameraHandle::primer`]).
    ///
    /// [`CameraHandle::primer`]: crate::camera::CameraHandle::primer
    pub primer: Option<Arc<tokio::sync::Notify>>,
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

async fn app_js() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../../../web/app.js"),
    )
}

async fn overlay_js() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../../../web/overlay.js"),
    )
}

async fn fullscreen_js() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("../../../web/fullscreen.js"),
    )
}

async fn style_css() -> Response {
    asset(
        "text/css; charset=utf-8",
        include_str!("../../../web/style.css"),
    )
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
    camera: Option<crate::camera::CameraSnapshot>,
    /// Process ids of the media workers.
    workers: Option<Workers>,
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
        workers: state.camera.as_ref().map(|c| {
            let (active, spare) = c.worker_pids();
            Workers { active, spare }
        }),
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
    state.prime();
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

#[cfg(test)]
mod tests {
    use super::*;

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
