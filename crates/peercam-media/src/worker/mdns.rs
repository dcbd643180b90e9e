//! Browsers' `.local` candidates, resolved off the loop with a bound on the wait, and fed
//! back to the loop as if the remote had sent the candidate with its address.
//!
//! The multicast DNS daemon is started on the first such candidate and kept for the life of
//! the worker. This file must not touch peers: a candidate whose peer has gone by the time it
//! resolves is dropped by the negotiation, like any other.

use std::time::Duration;

use peercam_signaling::Outgoing;
use tokio::sync::mpsc;

use crate::ice;
use crate::peer::PeerKey;

/// The longest a `.local` name is waited for.
const RESOLVE_WAIT: Duration = Duration::from_secs(3);

/// Resolves `.local` candidates.
pub(super) struct Resolver {
    /// Started on the first `.local` candidate.
    daemon: Option<mdns_sd::ServiceDaemon>,
    /// Where resolved candidates go: the loop, as (device member, remote's message).
    resolved: mpsc::Sender<(String, Outgoing)>,
}

impl Resolver {
    /// A resolver feeding `resolved`; no daemon yet.
    pub(super) fn new(resolved: mpsc::Sender<(String, Outgoing)>) -> Resolver {
        Resolver {
            daemon: None,
            resolved,
        }
    }

    /// Resolves a `.local` candidate on a thread of its own, then hands it to the loop.
    pub(super) fn resolve_later(
        &mut self,
        key: PeerKey,
        mline: u32,
        candidate: String,
        host: String,
    ) {
        if self.daemon.is_none() {
            match mdns_sd::ServiceDaemon::new() {
                Ok(d) => self.daemon = Some(d),
                Err(e) => {
                    log::warn!("mDNS unavailable, dropping {host}: {e}");
                    return;
                }
            }
        }
        let Some(daemon) = self.daemon.clone() else {
            return;
        };
        let tx = self.resolved.clone();
        std::thread::spawn(
            move || match ice::resolve_mdns(&daemon, &host, RESOLVE_WAIT) {
                Some(ip) => {
                    let candidate = ice::with_address(&candidate, ip);
                    // Re-enter the loop as if the peer had sent the resolved candidate.
                    let _ = tx.try_send((
                        key.0,
                        Outgoing::Candidate {
                            from: key.1,
                            candidate: ice::to_json(mline, &candidate),
                        },
                    ));
                }
                None => log::info!("could not resolve {host}; candidate dropped"),
            },
        );
    }
}
