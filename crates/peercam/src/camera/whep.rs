//! The WHEP door's sessions as the camera loop keeps them (the HTTP side is `crate::whep`).
//!
//! A session is a remote peer of the camera's own member, named `whep-<random>`, that is not a
//! member of the hub: its offer reaches the worker as an `answerRequest` to the camera, its
//! candidates as `candidate`s, its end as `left`, exactly as a nextRTC member's would, so the
//! worker serves it like any viewer. What the worker sends back to it is caught here before
//! the hub: the answer goes to the waiting `POST`, a `NEGOTIATION_FAILED` to the `POST` (or,
//! once connected, ends the session), late candidates are dropped (the answer carried the
//! gathered ones). Sessions count against the broadcast's viewer limit in the hub.

use std::collections::HashMap;

use tokio::sync::oneshot;

use crate::signaling::{Incoming, Outgoing};
use crate::whep::trickle::{self, Patch};
use crate::whep::{DoorRequest, Opened, Refusal};

/// The prefix of a session's peer id.
const PREFIX: &str = "whep-";

/// One session.
#[derive(Debug)]
struct Session {
    /// The player's offer (a `PATCH` is read against it).
    offer: String,
    /// Until the camera answered: where the answer goes.
    waiting: Option<oneshot::Sender<Result<Opened, Refusal>>>,
}

/// The sessions.
#[derive(Debug, Default)]
pub(super) struct Sessions {
    by_id: HashMap<String, Session>,
}

impl Sessions {
    /// Sessions open (answered or not).
    pub(super) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Takes one of the door's requests; `room` says whether one more viewer fits (else the
    /// limit). Replies to it at once when it can; returns what the camera's member must be told (the worker's
    /// messages from the session's peer).
    pub(super) fn take(&mut self, request: DoorRequest, room: Result<(), usize>) -> Vec<Outgoing> {
        match request {
            DoorRequest::Open { offer, reply } => {
                if let Err(limit) = room {
                    let _ = reply.send(Err(Refusal::Full { limit }));
                    return vec![];
                }
                let id = new_id();
                log::info!(peer = id.as_str(); "WHEP viewer offers");
                self.by_id.insert(
                    id.clone(),
                    Session {
                        offer: offer.clone(),
                        waiting: Some(reply),
                    },
                );
                vec![Outgoing::AnswerRequest {
                    from: id,
                    sdp: offer,
                }]
            }
            DoorRequest::Patch { id, frag, reply } => {
                let Some(session) = self.by_id.get(&id) else {
                    let _ = reply.send(Err(Refusal::NotFound));
                    return vec![];
                };
                match trickle::read(&session.offer, &frag) {
                    Ok(Patch::Trickle(candidates)) => {
                        let _ = reply.send(Ok(()));
                        candidates
                            .into_iter()
                            .map(|candidate| Outgoing::Candidate {
                                from: id.clone(),
                                candidate,
                            })
                            .collect()
                    }
                    Ok(Patch::Restart) => {
                        let _ = reply.send(Err(Refusal::Restart));
                        vec![]
                    }
                    Err(why) => {
                        let _ = reply.send(Err(Refusal::Unusable(why)));
                        vec![]
                    }
                }
            }
            DoorRequest::Close { id, reply } => {
                if self.by_id.remove(&id).is_none() {
                    let _ = reply.send(Err(Refusal::NotFound));
                    return vec![];
                }
                log::info!(peer = id.as_str(); "WHEP viewer ended its session");
                let _ = reply.send(Ok(()));
                vec![Outgoing::Left { from: id }]
            }
        }
    }

    /// A message a device member sends: when it is for a session, it is taken here (and what
    /// the camera's member must be told in turn goes to `steps`); else it is handed back for the hub.
    pub(super) fn deliver(&mut self, msg: Incoming, steps: &mut Vec<Outgoing>) -> Option<Incoming> {
        let Some(id) = msg.recipient().filter(|to| to.starts_with(PREFIX)) else {
            return Some(msg);
        };
        let id = id.to_owned();
        let Some(session) = self.by_id.get_mut(&id) else {
            // Ended meanwhile (or a member's id that merely looks like one: never a hub member,
            // since the hub names members otherwise).
            return None;
        };
        match msg {
            Incoming::AnswerResponse { sdp, .. } => {
                if let Some(reply) = session.waiting.take() {
                    let opened = Opened {
                        id: id.clone(),
                        answer: sdp,
                    };
                    if reply.send(Ok(opened)).is_err() {
                        // The player gave up waiting: its peer goes.
                        self.by_id.remove(&id);
                        steps.push(Outgoing::Left { from: id });
                    }
                }
            }
            Incoming::NegotiationFailed { reason, .. } => {
                let session = self.by_id.remove(&id);
                match session.and_then(|s| s.waiting) {
                    Some(reply) => {
                        let _ = reply.send(Err(Refusal::Unusable(reason)));
                    }
                    None => log::info!(peer = id.as_str(); "WHEP viewer released: {reason}"),
                }
            }
            _ => {}
        }
        None
    }

    /// Every session ends (the worker serving them died, or the camera stops); a player still
    /// waiting is told why.
    pub(super) fn end_all(&mut self, why: &str) {
        for (_, session) in self.by_id.drain() {
            if let Some(reply) = session.waiting {
                let _ = reply.send(Err(Refusal::Unavailable(why.to_owned())));
            }
        }
    }
}

/// A new session id: 128 random bits, so that no other client on the LAN can guess a
/// session's URL.
fn new_id() -> String {
    let mut bytes = [0u8; 16];
    // getrandom fails only without any entropy source, which a running Linux has.
    let _ = getrandom::fill(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{PREFIX}{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\na=ice-ufrag:abcd\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=mid:0\r\n";

    fn open(sessions: &mut Sessions) -> (String, oneshot::Receiver<Result<Opened, Refusal>>) {
        let (reply, rx) = oneshot::channel();
        let steps = sessions.take(
            DoorRequest::Open {
                offer: OFFER.into(),
                reply,
            },
            Ok(()),
        );
        match steps.as_slice() {
            [Outgoing::AnswerRequest { from, sdp }] => {
                assert_eq!(sdp, OFFER);
                (from.clone(), rx)
            }
            other => panic!("expected an answer request, got {other:?}"),
        }
    }

    #[test]
    fn the_answer_goes_to_the_waiting_post_and_not_to_the_hub() {
        let mut s = Sessions::default();
        let (id, mut rx) = open(&mut s);
        assert!(id.starts_with("whep-") && id.len() == 5 + 32, "{id}");
        let mut steps = vec![];
        let answer = Incoming::AnswerResponse {
            to: id.clone(),
            sdp: "v=0 answer".into(),
        };
        assert_eq!(s.deliver(answer, &mut steps), None);
        assert_eq!(
            rx.try_recv().unwrap(),
            Ok(Opened {
                id: id.clone(),
                answer: "v=0 answer".into()
            })
        );
        // Late candidates are dropped; a member's messages pass.
        let late = Incoming::Candidate {
            to: id.clone(),
            candidate: "{}".into(),
        };
        assert_eq!(s.deliver(late, &mut steps), None);
        let other = Incoming::Candidate {
            to: "3f2a".into(),
            candidate: "{}".into(),
        };
        assert_eq!(s.deliver(other.clone(), &mut steps), Some(other));
        assert!(steps.is_empty());
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn a_refused_offer_gets_the_sentence_and_leaves_no_session() {
        let mut s = Sessions::default();
        let (id, mut rx) = open(&mut s);
        let failed = Incoming::NegotiationFailed {
            to: id,
            reason: "this player offered no H.264 or VP8 video".into(),
        };
        assert_eq!(s.deliver(failed, &mut vec![]), None);
        assert_eq!(
            rx.try_recv().unwrap(),
            Err(Refusal::Unusable(
                "this player offered no H.264 or VP8 video".into()
            ))
        );
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn a_full_camera_refuses_without_a_session() {
        let mut s = Sessions::default();
        let (reply, mut rx) = oneshot::channel();
        let steps = s.take(
            DoorRequest::Open {
                offer: OFFER.into(),
                reply,
            },
            Err(4),
        );
        assert!(steps.is_empty());
        assert_eq!(rx.try_recv().unwrap(), Err(Refusal::Full { limit: 4 }));
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn delete_releases_the_peer_once() {
        let mut s = Sessions::default();
        let (id, _rx) = open(&mut s);
        let close = |s: &mut Sessions| {
            let (reply, mut rx) = oneshot::channel();
            let steps = s.take(
                DoorRequest::Close {
                    id: id.clone(),
                    reply,
                },
                Ok(()),
            );
            (steps, rx.try_recv().unwrap())
        };
        assert_eq!(
            close(&mut s),
            (vec![Outgoing::Left { from: id.clone() }], Ok(()))
        );
        assert_eq!(close(&mut s), (vec![], Err(Refusal::NotFound)));
    }

    #[test]
    fn a_player_that_gave_up_waiting_has_its_peer_released() {
        let mut s = Sessions::default();
        let (id, rx) = open(&mut s);
        drop(rx);
        let mut steps = vec![];
        let answer = Incoming::AnswerResponse {
            to: id.clone(),
            sdp: "v=0".into(),
        };
        s.deliver(answer, &mut steps);
        assert_eq!(steps, vec![Outgoing::Left { from: id }]);
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn trickled_candidates_reach_the_peer_and_a_restart_is_refused() {
        let mut s = Sessions::default();
        let (id, _rx) = open(&mut s);
        let patch = |s: &mut Sessions, frag: &str| {
            let (reply, mut rx) = oneshot::channel();
            let steps = s.take(
                DoorRequest::Patch {
                    id: id.clone(),
                    frag: frag.into(),
                    reply,
                },
                Ok(()),
            );
            (steps, rx.try_recv().unwrap())
        };
        let (steps, result) = patch(
            &mut s,
            "a=mid:0\r\na=candidate:1 1 udp 1 10.9.9.9 9 typ host\r\n",
        );
        assert_eq!(result, Ok(()));
        assert!(matches!(steps.as_slice(), [Outgoing::Candidate { from, .. }] if *from == id));
        let (steps, result) = patch(&mut s, "a=ice-ufrag:new1\r\na=ice-pwd:x\r\n");
        assert_eq!((steps, result), (vec![], Err(Refusal::Restart)));
    }

    #[test]
    fn ending_all_tells_the_waiting() {
        let mut s = Sessions::default();
        let (_, mut rx) = open(&mut s);
        s.end_all("the camera restarted");
        assert_eq!(
            rx.try_recv().unwrap(),
            Err(Refusal::Unavailable("the camera restarted".into()))
        );
        assert_eq!(s.len(), 0);
    }
}
