//! Conversations, members and the per-pair negotiation state machine of PROTOCOL.md.
//!
//! Pure: `handle(from, message)` returns the messages to deliver and nothing else happens.
//! It never touches a socket, a clock or a channel, so every rule is tested directly. It owns
//! all signaling state; the transport owns only connections.

use std::collections::HashMap;

use super::protocol::{ConversationKind, ErrorCode, Incoming, Outgoing};

pub mod capacity;

use capacity::{release_spare, release_spare_vec};

/// A member id: opaque, chosen by the server, unique per connection.
pub type MemberId = String;

/// One message to deliver: recipient and message.
pub type Delivery = (MemberId, Outgoing);

/// Rules that vary by deployment.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Joining a conversation that does not exist creates it (nextRTC behaviour); when false,
    /// such a join gets `CONVERSATION_NOT_FOUND`.
    pub join_creates: bool,
    /// The most viewers any broadcast admits (the device's own conversation may set a lower
    /// limit); `None` for no limit.
    pub max_viewers: Option<usize>,
    /// Candidates held per pair while it is not yet finalized; past this they are refused,
    /// so a client cannot grow server memory by never answering.
    pub max_held_candidates: usize,
    /// The member that receives `invite` (the device's own peer), if there is one.
    pub device: Option<MemberId>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            join_creates: true,
            max_viewers: None,
            max_held_candidates: 64,
            device: None,
        }
    }
}

/// Negotiation state of one pair of members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairState {
    /// The offerer was sent `offerRequest` and has not offered yet.
    OfferRequested,
    /// The answerer was sent `answerRequest` and has not answered yet.
    AnswerRequested,
    /// `finalize` was sent; candidates flow freely.
    ExchangeCandidates,
}

#[derive(Debug)]
struct Pair {
    offerer: MemberId,
    answerer: MemberId,
    state: PairState,
    /// Candidates waiting for `finalize`: (from, to, candidate), in arrival order.
    held: Vec<(MemberId, MemberId, String)>,
}

/// The stricter of two optional limits.
fn stricter(a: Option<usize>, b: Option<usize>) -> Option<usize> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[derive(Debug)]
struct Conversation {
    kind: ConversationKind,
    /// Members in join order; for a broadcast the first is the broadcaster.
    members: Vec<MemberId>,
    /// A per-conversation viewer limit, stricter than the global one.
    max_viewers: Option<usize>,
    /// Viewers of this broadcast served outside signaling (the device's WHEP door): they
    /// count against its limit like members do.
    elsewhere: usize,
}

impl Conversation {
    fn broadcaster(&self) -> Option<&MemberId> {
        match self.kind {
            ConversationKind::Broadcast => self.members.first(),
            ConversationKind::Mesh => None,
        }
    }
}

/// All signaling state of one server.
#[derive(Debug, Default)]
pub struct Signaling {
    settings: Settings,
    /// Every connected member and the conversation it is in, if any.
    members: HashMap<MemberId, Option<String>>,
    conversations: HashMap<String, Conversation>,
    /// Pairs keyed by (smaller id, larger id).
    pairs: HashMap<(MemberId, MemberId), Pair>,
}

fn pair_key(a: &str, b: &str) -> (MemberId, MemberId) {
    if a <= b {
        (a.to_owned(), b.to_owned())
    } else {
        (b.to_owned(), a.to_owned())
    }
}

fn err(to: &str, code: ErrorCode, message: impl Into<String>) -> Vec<Delivery> {
    vec![(to.to_owned(), Outgoing::error(code, message))]
}

impl Signaling {
    /// An empty server with these rules.
    pub fn new(settings: Settings) -> Self {
        Signaling {
            settings,
            ..Default::default()
        }
    }

    /// The rules in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Registers a newly connected member. Returns false if the id is taken.
    pub fn connect(&mut self, id: &str) -> bool {
        if self.members.contains_key(id) {
            return false;
        }
        self.members.insert(id.to_owned(), None);
        true
    }

    /// Whether `id` is connected.
    pub fn is_member(&self, id: &str) -> bool {
        self.members.contains_key(id)
    }

    /// Removes a member whose connection closed: it leaves its conversation first.
    pub fn disconnect(&mut self, id: &str) -> Vec<Delivery> {
        let out = self.leave(id);
        self.members.remove(id);
        release_spare(&mut self.members);
        out
    }

    /// Number of connected members.
    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// Number of live conversations.
    pub fn conversation_count(&self) -> usize {
        self.conversations.len()
    }

    /// Number of pairs in negotiation or connected.
    pub fn pair_count(&self) -> usize {
        self.pairs.len()
    }

    /// The conversation `id` is in.
    pub fn conversation_of(&self, id: &str) -> Option<&str> {
        self.members.get(id).and_then(|c| c.as_deref())
    }

    /// The members of conversation `conv`, in join order.
    pub fn members_of(&self, conv: &str) -> Option<&[MemberId]> {
        self.conversations.get(conv).map(|c| c.members.as_slice())
    }

    /// The ids of all live conversations, in no particular order.
    pub fn conversation_ids(&self) -> impl Iterator<Item = &str> {
        self.conversations.keys().map(String::as_str)
    }

    /// The kind of conversation `conv`, if it exists.
    pub fn kind_of(&self, conv: &str) -> Option<ConversationKind> {
        self.conversations.get(conv).map(|c| c.kind)
    }

    /// The state of the pair (a, b), if they are negotiating or connected.
    pub fn pair_state(&self, a: &str, b: &str) -> Option<PairState> {
        self.pairs.get(&pair_key(a, b)).map(|p| p.state)
    }

    /// Sets a viewer limit on one broadcast (the device's own).
    pub fn set_viewer_limit(&mut self, conv: &str, limit: Option<usize>) {
        if let Some(c) = self.conversations.get_mut(conv) {
            c.max_viewers = limit;
        }
    }

    /// Says how many viewers of broadcast `conv` are served outside signaling: they count
    /// against its viewer limit.
    pub fn set_viewers_elsewhere(&mut self, conv: &str, viewers: usize) {
        if let Some(c) = self.conversations.get_mut(conv) {
            c.elsewhere = viewers;
        }
    }

    /// Viewers of broadcast `conv`: its members but the broadcaster, and those served
    /// elsewhere; `None` when there is no such broadcast.
    pub fn viewers_of(&self, conv: &str) -> Option<usize> {
        self.conversations
            .get(conv)
            .filter(|c| c.kind == ConversationKind::Broadcast)
            .map(|c| c.members.len().saturating_sub(1) + c.elsewhere)
    }

    /// The viewer limit of broadcast `conv` (its own or the server's, the stricter).
    pub fn viewer_limit_of(&self, conv: &str) -> Option<usize> {
        let c = self.conversations.get(conv)?;
        stricter(c.max_viewers, self.settings.max_viewers)
    }

    /// Handles one message from member `from`.
    pub fn handle(&mut self, from: &str, msg: Incoming) -> Vec<Delivery> {
        if !self.members.contains_key(from) {
            // The transport only calls this for connected members; a stale call is harmless.
            return Vec::new();
        }
        match msg {
            Incoming::Create { conversation, kind } => self.create(from, conversation, kind),
            Incoming::Join { conversation } => self.join(from, &conversation),
            Incoming::OfferResponse { to, sdp } => self.offer_response(from, &to, sdp),
            Incoming::AnswerResponse { to, sdp } => self.answer_response(from, &to, sdp),
            Incoming::Candidate { to, candidate } => self.candidate(from, &to, candidate),
            Incoming::Left => self.leave(from),
            Incoming::Text { to, content } => self.text(from, to.as_deref(), content),
            Incoming::Ping => Vec::new(),
            Incoming::Invite { conversation } => self.invite(from, &conversation),
            Incoming::NegotiationFailed { to, reason } => {
                self.negotiation_failed(from, &to, reason)
            }
            Incoming::Talk { start } => self.talk(from, start),
            Incoming::TalkState { to, state, message } => {
                self.talk_state(from, &to, state, message)
            }
        }
    }

    fn create(&mut self, from: &str, conv: String, kind: ConversationKind) -> Vec<Delivery> {
        if let Some(current) = self.conversation_of(from) {
            return err(
                from,
                ErrorCode::MemberInOtherConversation,
                format!("already in conversation {current:?}; send left first"),
            );
        }
        let conv = if conv.is_empty() {
            uuid::Uuid::new_v4().to_string()
        } else {
            conv
        };
        if self.conversations.contains_key(&conv) {
            return err(
                from,
                ErrorCode::ConversationNameOccupied,
                format!("conversation {conv:?} already exists"),
            );
        }
        self.conversations.insert(
            conv.clone(),
            Conversation {
                kind,
                members: vec![from.to_owned()],
                max_viewers: None,
                elsewhere: 0,
            },
        );
        self.members.insert(from.to_owned(), Some(conv.clone()));
        vec![(
            from.to_owned(),
            Outgoing::Created {
                conversation: conv,
                kind,
            },
        )]
    }

    fn join(&mut self, from: &str, conv: &str) -> Vec<Delivery> {
        if let Some(current) = self.conversation_of(from) {
            return err(
                from,
                ErrorCode::MemberInOtherConversation,
                format!("already in conversation {current:?}; send left first"),
            );
        }
        let Some(c) = self.conversations.get_mut(conv) else {
            if self.settings.join_creates {
                let mut out = self.create(from, conv.to_owned(), ConversationKind::Mesh);
                // nextRTC answers a join that created the conversation with `created`.
                out.truncate(1);
                return out;
            }
            return err(
                from,
                ErrorCode::ConversationNotFound,
                format!("no conversation {conv:?}"),
            );
        };
        let existing: Vec<MemberId> = match c.kind {
            ConversationKind::Mesh => c.members.clone(),
            ConversationKind::Broadcast => {
                let viewers = c.members.len().saturating_sub(1) + c.elsewhere;
                let limit = stricter(c.max_viewers, self.settings.max_viewers);
                if let Some(limit) = limit.filter(|&l| viewers >= l) {
                    let s = if limit == 1 { "" } else { "s" };
                    return err(
                        from,
                        ErrorCode::ViewerLimit,
                        format!("{conv:?} already has its limit of {limit} viewer{s}"),
                    );
                }
                c.broadcaster().cloned().into_iter().collect()
            }
        };
        c.members.push(from.to_owned());
        self.members.insert(from.to_owned(), Some(conv.to_owned()));
        let mut out = vec![(
            from.to_owned(),
            Outgoing::Joined {
                conversation: conv.to_owned(),
            },
        )];
        for other in existing {
            out.push((
                other.clone(),
                Outgoing::NewJoined {
                    member: from.to_owned(),
                },
            ));
            out.push((
                other.clone(),
                Outgoing::OfferRequest {
                    from: from.to_owned(),
                },
            ));
            self.pairs.insert(
                pair_key(&other, from),
                Pair {
                    offerer: other,
                    answerer: from.to_owned(),
                    state: PairState::OfferRequested,
                    held: Vec::new(),
                },
            );
        }
        out
    }

    /// Checks that `to` is a valid peer of `from` and returns the pair key.
    fn peer(&self, from: &str, to: &str) -> Result<(MemberId, MemberId), Vec<Delivery>> {
        let Some(to_conv) = self.members.get(to) else {
            return Err(err(
                from,
                ErrorCode::MemberNotFound,
                format!("no member {to:?}"),
            ));
        };
        let from_conv = self.conversation_of(from);
        if to == from || from_conv.is_none() || to_conv.as_deref() != from_conv {
            return Err(err(
                from,
                ErrorCode::InvalidRecipient,
                format!("{to:?} is not in your conversation"),
            ));
        }
        let key = pair_key(from, to);
        if !self.pairs.contains_key(&key) {
            return Err(err(
                from,
                ErrorCode::InvalidState,
                format!("no negotiation with {to:?}"),
            ));
        }
        Ok(key)
    }

    fn offer_response(&mut self, from: &str, to: &str, sdp: String) -> Vec<Delivery> {
        let key = match self.peer(from, to) {
            Ok(k) => k,
            Err(e) => return e,
        };
        // `peer` checked the pair exists.
        let pair = self.pairs.get_mut(&key).expect("pair exists");
        if pair.offerer != from || pair.state != PairState::OfferRequested {
            return err(
                from,
                ErrorCode::InvalidState,
                format!("no offer was requested from you for {to:?}"),
            );
        }
        pair.state = PairState::AnswerRequested;
        vec![(
            to.to_owned(),
            Outgoing::AnswerRequest {
                from: from.to_owned(),
                sdp,
            },
        )]
    }

    fn answer_response(&mut self, from: &str, to: &str, sdp: String) -> Vec<Delivery> {
        let key = match self.peer(from, to) {
            Ok(k) => k,
            Err(e) => return e,
        };
        // `peer` checked the pair exists.
        let pair = self.pairs.get_mut(&key).expect("pair exists");
        if pair.answerer != from || pair.state != PairState::AnswerRequested {
            return err(
                from,
                ErrorCode::InvalidState,
                format!("no answer was requested from you for {to:?}"),
            );
        }
        pair.state = PairState::ExchangeCandidates;
        let mut out = vec![(
            to.to_owned(),
            Outgoing::Finalize {
                from: from.to_owned(),
                sdp,
            },
        )];
        out.extend(
            pair.held
                .drain(..)
                .map(|(f, t, candidate)| (t, Outgoing::Candidate { from: f, candidate })),
        );
        out
    }

    fn candidate(&mut self, from: &str, to: &str, candidate: String) -> Vec<Delivery> {
        let key = match self.peer(from, to) {
            Ok(k) => k,
            Err(e) => return e,
        };
        let limit = self.settings.max_held_candidates;
        // `peer` checked the pair exists.
        let pair = self.pairs.get_mut(&key).expect("pair exists");
        if pair.state == PairState::ExchangeCandidates {
            return vec![(
                to.to_owned(),
                Outgoing::Candidate {
                    from: from.to_owned(),
                    candidate,
                },
            )];
        }
        if pair.held.len() >= limit {
            return err(
                from,
                ErrorCode::InvalidState,
                format!("more than {limit} candidates for {to:?} before the answer"),
            );
        }
        pair.held.push((from.to_owned(), to.to_owned(), candidate));
        Vec::new()
    }

    /// `from` gives up on its pair with `to`: the pair and its held candidates go, and `to`
    /// is told why. Either may negotiate again by leaving and joining.
    fn negotiation_failed(&mut self, from: &str, to: &str, reason: String) -> Vec<Delivery> {
        let key = match self.peer(from, to) {
            Ok(k) => k,
            Err(e) => return e,
        };
        self.pairs.remove(&key);
        release_spare(&mut self.pairs);
        vec![(
            to.to_owned(),
            Outgoing::NegotiationFailed {
                from: from.to_owned(),
                message: reason,
            },
        )]
    }

    fn text(&mut self, from: &str, to: Option<&str>, content: String) -> Vec<Delivery> {
        let Some(conv) = self.conversation_of(from) else {
            if let Some(to) = to.filter(|t| !self.members.contains_key(*t)) {
                return err(from, ErrorCode::MemberNotFound, format!("no member {to:?}"));
            }
            return err(
                from,
                ErrorCode::InvalidRecipient,
                "join a conversation before sending text",
            );
        };
        let msg = |from: &str| Outgoing::Text {
            from: from.to_owned(),
            content: content.clone(),
        };
        match to {
            Some(to) => match self.members.get(to) {
                None => err(from, ErrorCode::MemberNotFound, format!("no member {to:?}")),
                Some(c) if c.as_deref() == Some(conv) && to != from => {
                    vec![(to.to_owned(), msg(from))]
                }
                Some(_) => err(
                    from,
                    ErrorCode::InvalidRecipient,
                    format!("{to:?} is not in your conversation"),
                ),
            },
            None => self.conversations[conv]
                .members
                .iter()
                .filter(|m| *m != from)
                .map(|m| (m.clone(), msg(from)))
                .collect(),
        }
    }

    fn invite(&mut self, from: &str, conv: &str) -> Vec<Delivery> {
        let Some(c) = self.conversations.get(conv) else {
            return err(
                from,
                ErrorCode::ConversationNotFound,
                format!("no conversation {conv:?}"),
            );
        };
        if c.kind != ConversationKind::Mesh || self.conversation_of(from) != Some(conv) {
            return err(
                from,
                ErrorCode::InvalidState,
                "invite names a MESH conversation you are in",
            );
        }
        match &self.settings.device {
            Some(device) if self.members.contains_key(device) => vec![(
                device.clone(),
                Outgoing::Invite {
                    from: from.to_owned(),
                    conversation: conv.to_owned(),
                },
            )],
            _ => err(
                from,
                ErrorCode::MemberNotFound,
                "this server has no camera to invite",
            ),
        }
    }

    /// A viewer asks its broadcaster for the floor to talk, or gives it back.
    fn talk(&mut self, from: &str, start: bool) -> Vec<Delivery> {
        let broadcaster = self
            .conversation_of(from)
            .and_then(|conv| self.conversations.get(conv))
            .and_then(Conversation::broadcaster);
        match broadcaster {
            Some(b) if b != from => vec![(
                b.clone(),
                Outgoing::Talk {
                    from: from.to_owned(),
                    start,
                },
            )],
            _ => err(
                from,
                ErrorCode::InvalidState,
                "talk is for a viewer of a broadcast, to its broadcaster",
            ),
        }
    }

    /// The broadcaster tells viewer `to` where its talkback stands.
    fn talk_state(
        &mut self,
        from: &str,
        to: &str,
        state: super::protocol::TalkState,
        message: String,
    ) -> Vec<Delivery> {
        match (self.conversation_of(from), self.conversation_of(to)) {
            (Some(a), Some(b)) if a == b => vec![(
                to.to_owned(),
                Outgoing::TalkState {
                    from: from.to_owned(),
                    state,
                    message,
                },
            )],
            // The viewer left meanwhile: nobody to tell.
            _ => Vec::new(),
        }
    }

    /// `from` leaves its conversation; abandons every pair it was part of.
    fn leave(&mut self, from: &str) -> Vec<Delivery> {
        let Some(Some(conv_id)) = self.members.get(from).cloned() else {
            return Vec::new();
        };
        self.members.insert(from.to_owned(), None);
        self.pairs
            .retain(|_, p| p.offerer != from && p.answerer != from);
        release_spare(&mut self.pairs);
        let mut out = Vec::new();
        // The member's conversation exists while the member is in it.
        let conv = self.conversations.get_mut(&conv_id).expect("conversation");
        let was_broadcaster = conv.broadcaster().is_some_and(|b| b == from);
        conv.members.retain(|m| m != from);
        release_spare_vec(&mut conv.members);
        let left = |to: &MemberId| {
            (
                to.clone(),
                Outgoing::Left {
                    from: from.to_owned(),
                },
            )
        };
        match conv.kind {
            ConversationKind::Mesh => out.extend(conv.members.iter().map(left)),
            ConversationKind::Broadcast if !was_broadcaster => {
                out.extend(conv.members.first().map(left));
            }
            ConversationKind::Broadcast => {
                for viewer in &conv.members {
                    out.push(left(viewer));
                    out.push((
                        viewer.clone(),
                        Outgoing::End {
                            from: from.to_owned(),
                            conversation: conv_id.clone(),
                        },
                    ));
                }
            }
        }
        if was_broadcaster || conv.members.is_empty() {
            // Broadcast viewers lose the broadcaster, so their pairs went too.
            let orphans = std::mem::take(&mut conv.members);
            self.conversations.remove(&conv_id);
            release_spare(&mut self.conversations);
            for m in orphans {
                self.members.insert(m, None);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
