//! The WHIP publisher as the camera loop keeps it (the decisions are `publish::policy`, the
//! HTTP `publish::client`).
//!
//! Each attempt is a peer `whip-N` of the camera's own member that is no member of the hub: the
//! loop hands the worker an `offerRequest` from it, as the hub does for a broadcast viewer, so
//! the worker builds an offerer with everything a viewer gets. What the worker sends back to
//! it is caught here before the hub: its offer is posted to the endpoint (on a task of the
//! loop's runtime, whose outcome comes back through [`Publishing::new`]'s receiver), and the
//! server's answer goes to the worker as a `finalize`; a `NEGOTIATION_FAILED` ends the
//! attempt; late candidates are dropped (the offer carried the gathered ones). The peer is not
//! counted as a viewer.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::publish::policy::{Action, Event};
use crate::publish::{Client, Publisher, Status, Target};
use crate::signaling::{Incoming, Outgoing};

use super::CameraStats;

/// The longest a `POST` may take: Janus and MediaMTX answer within a second once their ICE
/// candidates are gathered.
const POST_WAIT: Duration = Duration::from_secs(15);

/// The longest a `DELETE` may take, so that stopping the device is never held up for long.
const DELETE_WAIT: Duration = Duration::from_secs(2);

/// Bound of the HTTP outcomes on their way back to the loop: one `POST` per attempt is in
/// flight at a time, so a handful is ample.
const RESULTS_QUEUE: usize = 16;

/// The publisher, its HTTP tasks and its status.
pub(super) struct Publishing {
    /// The decisions.
    publisher: Publisher,
    /// The endpoint's HTTP.
    client: Client,
    /// Where the `POST`s' outcomes go.
    results: mpsc::Sender<Event>,
    /// `DELETE`s under way (waited for when the camera stops).
    deletes: Vec<JoinHandle<()>>,
    /// Where the status is shown.
    stats: Arc<CameraStats>,
}

impl Publishing {
    /// A publisher to `target`, idle until [`Event::Begin`]; the receiver brings the outcomes
    /// of its `POST`s, to be passed back to [`Publishing::handle`].
    pub(super) fn new(
        target: Target,
        stats: Arc<CameraStats>,
        now: Instant,
    ) -> (Publishing, mpsc::Receiver<Event>) {
        let (results, rx) = mpsc::channel(RESULTS_QUEUE);
        let publishing = Publishing {
            publisher: Publisher::new(target.url.shown(), now),
            client: Client::new(target),
            results,
            deletes: Vec::new(),
            stats,
        };
        publishing.show(now);
        (publishing, rx)
    }

    /// When [`Event::Tick`] is due.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.publisher.next_deadline()
    }

    /// Takes in what happened; returns the messages the camera's member must be told (from
    /// the publisher's peer, for the worker).
    pub(super) fn handle(&mut self, now: Instant, event: Event) -> Vec<Outgoing> {
        let mut steps = Vec::new();
        for action in self.publisher.handle(now, event) {
            match action {
                Action::AskOffer { peer } => steps.push(Outgoing::OfferRequest { from: peer }),
                Action::Finalize { peer, answer } => steps.push(Outgoing::Finalize {
                    from: peer,
                    sdp: answer,
                }),
                Action::Release { peer } => steps.push(Outgoing::Left { from: peer }),
                Action::Post { peer, offer } => self.post(peer, offer),
                Action::Delete { location } => self.delete(location),
            }
        }
        self.show(now);
        steps
    }

    /// A message a device member sends: when it is for the publisher's peer, it is taken here
    /// (what the camera's member must be told in turn is returned as `Ok`); else it is handed
    /// back for the others.
    pub(super) fn deliver(
        &mut self,
        now: Instant,
        msg: Incoming,
    ) -> Result<Vec<Outgoing>, Incoming> {
        if !msg.recipient().is_some_and(Publisher::is_ours) {
            return Err(msg);
        }
        let event = match msg {
            Incoming::OfferResponse { to, sdp } => Event::Offer { peer: to, sdp },
            Incoming::NegotiationFailed { to, reason } => Event::Refused { peer: to, reason },
            // Candidates gathered after the offer went out: a LAN's host candidates travel in
            // the offer, so these are let go.
            _ => return Ok(Vec::new()),
        };
        Ok(self.handle(now, event))
    }

    /// The camera stops: ends the session at the server; the returned future waits for that
    /// (and any other `DELETE` under way), each bounded by [`DELETE_WAIT`].
    pub(super) fn stop(&mut self, now: Instant) -> impl Future<Output = ()> + use<> {
        // The workers are stopping: the peer needs no `left`.
        let _ = self.handle(now, Event::Stop);
        let deletes = std::mem::take(&mut self.deletes);
        async move {
            for delete in deletes {
                let _ = delete.await;
            }
        }
    }

    /// Posts the offer on a task; its outcome comes back as an event.
    fn post(&mut self, peer: String, offer: String) {
        let client = self.client.clone();
        let results = self.results.clone();
        tokio::spawn(async move {
            let event = match client.post_offer(offer, POST_WAIT).await {
                Ok(answer) => Event::Answered {
                    peer,
                    answer: answer.sdp,
                    location: answer.location,
                },
                Err(error) => Event::PostFailed { peer, error },
            };
            // The loop has ended when this fails: nothing is left to tell.
            let _ = results.send(event).await;
        });
    }

    /// Ends a session at the server on a task, logging how it went.
    fn delete(&mut self, location: String) {
        let client = self.client.clone();
        let shown = self.publisher.shown().to_owned();
        self.deletes.retain(|d| !d.is_finished());
        self.deletes.push(tokio::spawn(async move {
            match client.delete(&location, DELETE_WAIT).await {
                Ok(reply) if reply.status.is_success() => {
                    log::info!("publishing to {shown}: session ended at the server")
                }
                Ok(reply) => log::warn!(
                    "publishing to {shown}: ending the session: {}",
                    reply.describe()
                ),
                Err(e) => log::warn!("publishing to {shown}: ending the session: {e}"),
            }
        }));
    }

    /// Shows the publisher's status in the live counts.
    fn show(&self, now: Instant) {
        let status = Status::of(&self.publisher, now, SystemTime::now());
        if let Ok(mut shown) = self.stats.publish.lock() {
            *shown = Some(status);
        }
    }
}
