//! Priming: a rehearsal of a viewer's session, run once per worker when the device expects a
//! viewer, so that the viewer's own session does not pay for the process's first one.
//!
//! It runs on a thread of its own with its own capture pipeline (never started, so no camera
//! is opened) and a stand-in peer, and throws both away. It must not touch the loop's peers
//! or capture; its peer's events reach the loop under a key no negotiation has, and are
//! ignored there.

use std::time::Instant;

use peercam_sdp::Codec;
use peercam_wire::IceSettings;

use crate::fanout::Fanout;
use crate::peer::{EventSender, Peer, PeerKey, Role};

/// Builds, and throws away, what a viewer's session builds: the capture pipeline (not
/// started, so no camera is opened) and a peer that makes and applies an offer. Loading
/// the plugins and libraries, and the first offer's one-time set-up, are most of what a
/// worker's first session costs beyond a later one's.
///
/// It runs on a thread of its own, so that a viewer whose offer request arrives meanwhile
/// (the page loads while this runs, and the machine is busiest then) is served at once
/// instead of after it: the viewer's session builds the same things, and whatever the
/// rehearsal has loaded by then is loaded for it too.
///
/// Its peer presents `dtls_pem` as a viewer's would, so that no certificate is made for it.
pub(super) fn spawn(
    launch: String,
    codecs: Vec<Codec>,
    ice: IceSettings,
    dtls_pem: Option<String>,
    key: PeerKey,
    events: EventSender,
) {
    let spawned = std::thread::Builder::new()
        .name("prime".into())
        .spawn(move || {
            let t = Instant::now();
            let built = Fanout::new(&launch).and_then(|_capture| {
                Peer::new(
                    key,
                    Role::Offerer,
                    &codecs,
                    &ice,
                    dtls_pem.as_deref(),
                    events,
                )?
                .rehearse_offer()
            });
            match built {
                Ok(()) => log::debug!("primed in {:?}", t.elapsed()),
                Err(e) => log::debug!("priming failed: {e}"),
            }
        });
    if let Err(e) = spawned {
        log::debug!("priming not started: {e}");
    }
}
