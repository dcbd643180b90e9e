//! The hub: the one owner of the signaling core, shared by every connection.
//!
//! Members are anything with a [`MemberSink`]: a WebSocket connection, or an in-process member
//! such as the device's own peer ([`InternalMember`]). The hub runs the pure core under a
//! `std::sync::Mutex` (never held across an `.await`) and hands each resulting message to its
//! recipient's sink. A sink that cannot take a message (its bounded queue is full) marks a
//! consumer too slow to keep up: it is dropped as if it had left, and everyone else carries on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::mpsc;

use super::conversation::capacity::release_spare;
use super::conversation::{Delivery, MemberId, Settings, Signaling};
use super::protocol::{Incoming, Outgoing};

/// The recipient's queue is full; the member will be dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow;

/// Where a member's messages go. Implementations must not block: queue or refuse.
pub trait MemberSink: Send + Sync {
    /// Queues `msg` for member `to`.
    fn deliver(&self, to: &str, msg: &Outgoing) -> Result<(), Overflow>;
}

/// Counts for health checks, tests and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct HubStats {
    /// Connected members (WebSocket and internal).
    pub members: usize,
    /// Live conversations.
    pub conversations: usize,
    /// Pairs negotiating or connected.
    pub pairs: usize,
}

struct Inner {
    core: Signaling,
    sinks: HashMap<MemberId, Arc<dyn MemberSink>>,
}

/// Shared signaling state; cheap to call from any task.
pub struct Hub {
    inner: Mutex<Inner>,
}

/// A requested member id is already in use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("member id {0:?} is already connected")]
pub struct IdTaken(pub String);

impl Hub {
    /// A hub with these conversation rules.
    pub fn new(settings: Settings) -> Arc<Hub> {
        Arc::new(Hub {
            inner: Mutex::new(Inner {
                core: Signaling::new(settings),
                sinks: HashMap::new(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock would be a bug in the core; the state it guards is
        // still consistent enough to keep serving the other members.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a member with a fresh server-chosen id.
    pub fn connect(&self, sink: Arc<dyn MemberSink>) -> MemberId {
        let mut inner = self.lock();
        loop {
            let id = fresh_id();
            if inner.core.connect(&id) {
                inner.sinks.insert(id.clone(), sink);
                return id;
            }
        }
    }

    /// Adds a member with a chosen id (the device's stable `camera`).
    pub fn connect_as(&self, id: &str, sink: Arc<dyn MemberSink>) -> Result<(), IdTaken> {
        let mut inner = self.lock();
        if !inner.core.connect(id) {
            return Err(IdTaken(id.to_owned()));
        }
        inner.sinks.insert(id.to_owned(), sink);
        Ok(())
    }

    /// Handles one message from `from`.
    pub fn handle(&self, from: &str, msg: Incoming) {
        let mut inner = self.lock();
        let out = inner.core.handle(from, msg);
        dispatch(&mut inner, out);
    }

    /// Sends one message straight to a member (used for transport-level errors).
    pub fn send_to(&self, to: &str, msg: Outgoing) {
        let mut inner = self.lock();
        dispatch(&mut inner, vec![(to.to_owned(), msg)]);
    }

    /// Removes a member: it leaves its conversation and its sink is dropped.
    pub fn disconnect(&self, id: &str) {
        let mut inner = self.lock();
        if inner.sinks.remove(id).is_some() {
            release_spare(&mut inner.sinks);
            let out = inner.core.disconnect(id);
            dispatch(&mut inner, out);
        }
    }

    /// Runs `f` on the core (for settings such as a viewer limit on one conversation).
    pub fn with_core<R>(&self, f: impl FnOnce(&mut Signaling) -> R) -> R {
        f(&mut self.lock().core)
    }

    /// Current counts.
    pub fn stats(&self) -> HubStats {
        let inner = self.lock();
        HubStats {
            members: inner.core.member_count(),
            conversations: inner.core.conversation_count(),
            pairs: inner.core.pair_count(),
        }
    }
}

/// Delivers `out`; members whose queues overflow are dropped, which may produce more
/// deliveries (`left` to their peers), delivered in turn.
fn dispatch(inner: &mut Inner, mut out: Vec<Delivery>) {
    while !out.is_empty() {
        let mut dropped = Vec::new();
        for (to, msg) in out.drain(..) {
            if let Some(sink) = inner.sinks.get(&to) {
                if sink.deliver(&to, &msg).is_err() && !dropped.contains(&to) {
                    log::warn!(member = to.as_str(); "send queue full; dropping slow member");
                    dropped.push(to);
                }
            }
        }
        for id in dropped {
            if inner.sinks.remove(&id).is_some() {
                release_spare(&mut inner.sinks);
                out.extend(inner.core.disconnect(&id));
            }
        }
    }
}

/// 12 hex digits (48 random bits): short on the wire, collisions checked on connect.
fn fresh_id() -> MemberId {
    let mut id = uuid::Uuid::new_v4().simple().to_string();
    id.truncate(12);
    id
}

/// A sink that queues messages on a bounded channel.
pub struct ChannelSink(pub mpsc::Sender<Outgoing>);

impl MemberSink for ChannelSink {
    fn deliver(&self, _to: &str, msg: &Outgoing) -> Result<(), Overflow> {
        self.0.try_send(msg.clone()).map_err(|_| Overflow)
    }
}

/// An in-process member: joins, sends and receives like a WebSocket client, without one.
/// Leaves (as a closed socket would) when dropped.
pub struct InternalMember {
    hub: Arc<Hub>,
    id: MemberId,
    rx: mpsc::Receiver<Outgoing>,
}

impl InternalMember {
    /// Connects with a chosen id (or a fresh one) and a queue of `queue` messages.
    pub fn connect(hub: &Arc<Hub>, id: Option<&str>, queue: usize) -> Result<Self, IdTaken> {
        let (tx, rx) = mpsc::channel(queue);
        let sink = Arc::new(ChannelSink(tx));
        let id = match id {
            Some(id) => {
                hub.connect_as(id, sink)?;
                id.to_owned()
            }
            None => hub.connect(sink),
        };
        Ok(InternalMember {
            hub: hub.clone(),
            id,
            rx,
        })
    }

    /// This member's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Sends a message as this member.
    pub fn send(&self, msg: Incoming) {
        self.hub.handle(&self.id, msg);
    }

    /// The next message for this member; `None` once the hub dropped it.
    pub async fn recv(&mut self) -> Option<Outgoing> {
        self.rx.recv().await
    }

    /// A handle that can send as this member from elsewhere (e.g. GStreamer callbacks).
    pub fn sender(&self) -> MemberHandle {
        MemberHandle {
            hub: self.hub.clone(),
            id: self.id.clone(),
        }
    }
}

impl Drop for InternalMember {
    fn drop(&mut self) {
        self.hub.disconnect(&self.id);
    }
}

/// Sends as an internal member; cloneable and usable from any thread.
#[derive(Clone)]
pub struct MemberHandle {
    hub: Arc<Hub>,
    id: MemberId,
}

impl MemberHandle {
    /// Sends a message as this member.
    pub fn send(&self, msg: Incoming) {
        self.hub.handle(&self.id, msg);
    }

    /// The member's id.
    pub fn id(&self) -> &str {
        &self.id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signaling::protocol::ConversationKind;

    #[tokio::test]
    async fn internal_members_talk_through_the_hub() {
        let hub = Hub::new(Settings::default());
        let mut cam = InternalMember::connect(&hub, Some("camera"), 8).unwrap();
        assert!(InternalMember::connect(&hub, Some("camera"), 8).is_err());
        cam.send(Incoming::Create {
            conversation: "live".into(),
            kind: ConversationKind::Broadcast,
        });
        assert!(matches!(cam.recv().await, Some(Outgoing::Created { .. })));
        let mut viewer = InternalMember::connect(&hub, None, 8).unwrap();
        viewer.send(Incoming::Join {
            conversation: "live".into(),
        });
        assert!(matches!(viewer.recv().await, Some(Outgoing::Joined { .. })));
        assert_eq!(
            cam.recv().await,
            Some(Outgoing::NewJoined {
                member: viewer.id().to_owned()
            })
        );
        drop(viewer);
        assert!(matches!(
            cam.recv().await,
            Some(Outgoing::OfferRequest { .. })
        ));
        assert!(matches!(cam.recv().await, Some(Outgoing::Left { .. })));
        assert_eq!(hub.stats().pairs, 0);
    }

    #[tokio::test]
    async fn a_full_queue_drops_only_that_member() {
        let hub = Hub::new(Settings::default());
        let mut a = InternalMember::connect(&hub, Some("a"), 64).unwrap();
        let slow = InternalMember::connect(&hub, Some("slow"), 2).unwrap();
        a.send(Incoming::Join {
            conversation: "room".into(),
        });
        slow.send(Incoming::Join {
            conversation: "room".into(),
        });
        // slow's queue holds `joined`; one text fills it, the next overflows it.
        for _ in 0..3 {
            a.send(Incoming::Text {
                to: None,
                content: "x".into(),
            });
        }
        let mut got = Vec::new();
        while let Ok(m) = a.rx.try_recv() {
            got.push(m);
        }
        assert!(got.contains(&Outgoing::Left {
            from: "slow".into()
        }));
        assert_eq!(hub.stats().members, 1);
        assert_eq!(hub.stats().conversations, 1);
    }
}
