//! A WHEP player made of the receiving GStreamer peer ([`Viewer`]): it offers to receive
//! video, posts the offer to the device's WHEP door, applies the answer, trickles its own
//! candidates with `PATCH` as webrtcbin gathers them, and ends its session with `DELETE`.
//! It decides nothing a test expects; each wait is bounded.

use std::net::SocketAddr;
use std::time::Duration;

use super::gst_viewer::{Viewer, ViewerEvent};
use super::http::{self, Response};

/// A player with an open session.
pub struct Player {
    /// The receiving peer.
    pub viewer: Viewer,
    /// The device.
    addr: SocketAddr,
    /// The token, as `Authorization: Bearer`.
    bearer: Option<String>,
    /// The session's URL path (`Location`) and entity tag.
    pub location: String,
    pub etag: String,
    /// `PATCH` statuses, in order.
    pub patches: Vec<u16>,
}

/// The `Authorization` header, when there is a token.
fn auth(bearer: &Option<String>) -> Vec<(&'static str, &str)> {
    bearer
        .iter()
        .map(|b| ("Authorization", b.as_str()))
        .collect()
}

/// Makes a recvonly offer with a fresh [`Viewer`] and returns it with the offer's text.
pub async fn offer() -> (Viewer, String) {
    let mut viewer = Viewer::new();
    viewer.make_offer();
    let offer = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match viewer.events.recv().await {
                Some(ViewerEvent::Offer(sdp)) => return sdp,
                Some(_) => continue,
                None => panic!("the viewer ended before its offer"),
            }
        }
    })
    .await
    .expect("webrtcbin made its offer");
    (viewer, offer)
}

/// `POST`s `offer` to `/whep` as `application/sdp`.
pub async fn post(addr: SocketAddr, token: Option<&str>, offer: &str) -> Response {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = auth(&bearer);
    headers.push(("Content-Type", "application/sdp"));
    http::send(addr, "POST", "/whep", &headers, offer).await
}

impl Player {
    /// Offers, posts and applies the answer; panics with the device's sentence unless the
    /// door answered `201 Created`.
    pub async fn open(addr: SocketAddr, token: Option<&str>) -> Player {
        let (viewer, offer) = offer().await;
        let r = post(addr, token, &offer).await;
        assert_eq!(r.status, 201, "POST /whep: {} {}", r.status, r.body);
        assert_eq!(r.headers("Content-Type"), ["application/sdp"]);
        let location = r.headers("Location").pop().expect("a Location");
        let etag = r.headers("ETag").pop().expect("an ETag");
        viewer.on_answer(&r.body);
        Player {
            viewer,
            addr,
            bearer: token.map(|t| format!("Bearer {t}")),
            location,
            etag,
            patches: Vec::new(),
        }
    }

    /// Decoded frames so far.
    pub fn frames(&self) -> u64 {
        self.viewer
            .frames
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Sends the candidates gathered since the last call in one `PATCH`.
    pub async fn trickle(&mut self) {
        // One bundled video section: its candidates, without a mid (the first section).
        let mut lines = String::new();
        while let Ok(event) = self.viewer.events.try_recv() {
            if let ViewerEvent::Candidate(0, c) = event {
                lines.push_str(&format!("a={c}\r\n"));
            }
        }
        if lines.is_empty() {
            return;
        }
        let frag = format!("m=video 9 UDP/TLS/RTP/SAVPF 0\r\n{lines}");
        let mut headers = auth(&self.bearer);
        headers.push(("Content-Type", "application/trickle-ice-sdpfrag"));
        headers.push(("If-Match", &self.etag));
        let r = http::send(self.addr, "PATCH", &self.location, &headers, &frag).await;
        self.patches.push(r.status);
    }

    /// Trickles and waits until `n` more frames were decoded or `limit` passed; how many were.
    pub async fn play(&mut self, n: u64, limit: Duration) -> u64 {
        let start = self.frames();
        let deadline = tokio::time::Instant::now() + limit;
        while self.frames() < start + n && tokio::time::Instant::now() < deadline {
            self.trickle().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.frames() - start
    }

    /// `DELETE`s the session; the response.
    pub async fn delete(&self) -> Response {
        http::send(self.addr, "DELETE", &self.location, &auth(&self.bearer), "").await
    }
}
