//! Stopping departed peers off the loop: a webrtcbin takes down its transports (ICE agent,
//! DTLS, sockets) when it stops, which blocks, and a webrtcbin wedged inside GStreamer would
//! block for good. Each is stopped on a short-lived thread of its own, so that the loop (and
//! every other viewer) never waits for it, and one that never stops costs only itself.
//!
//! It must not decide when a peer is stopped: [`crate::retiring`] does.

use std::sync::{Arc, Mutex};

use crate::peer::Peer;

/// Stops `peer` (already out of the pipeline and settled) and drops it, on a thread of its
/// own; inline when no thread can be made.
pub(super) fn reap(peer: Peer) {
    let slot = Arc::new(Mutex::new(Some(peer)));
    let theirs = slot.clone();
    let spawned = std::thread::Builder::new()
        .name("reap".into())
        .spawn(move || stop(&theirs));
    if let Err(e) = spawned {
        log::warn!("stopping a departed peer inline: {e}");
        stop(&slot);
    }
}

/// Stops and drops the peer in `slot`, if it is still there.
fn stop(slot: &Mutex<Option<Peer>>) {
    let peer = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(peer) = peer {
        peer.stop();
    }
}
