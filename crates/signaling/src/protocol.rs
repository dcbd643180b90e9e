//! The nextRTC wire format: the JSON envelope, the signals in each direction and the error
//! codes (see PROTOCOL.md). Plain serde types only: no sockets, no clocks, no conversation
//! state. Parsing never panics; anything malformed becomes a [`ProtocolError`].

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// The envelope every message travels in, both directions. All fields are strings;
/// missing fields and `null` read as empty, unknown fields are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Sender's member id (overwritten by the server on input).
    #[serde(default, deserialize_with = "lenient_string")]
    pub from: String,
    /// Recipient's member id; empty means "the server" or "everyone", by signal.
    #[serde(default, deserialize_with = "lenient_string")]
    pub to: String,
    /// The signal name (case-insensitive on input, camelCase on output).
    #[serde(default, deserialize_with = "lenient_string")]
    pub signal: String,
    /// Signal-specific payload: a conversation id, an SDP, a candidate, a text.
    #[serde(default, deserialize_with = "lenient_string")]
    pub content: String,
    /// Extra string parameters, e.g. `type` on `create`, `message` on `error`.
    #[serde(default, deserialize_with = "lenient_map")]
    pub custom: BTreeMap<String, String>,
}

impl Envelope {
    /// Serializes to the JSON text sent on the wire.
    pub fn to_json(&self) -> String {
        // Serializing a struct of strings and a string map cannot fail.
        serde_json::to_string(self).expect("envelope serializes")
    }
}

/// Accepts a string, `null` (empty), or a number/bool (its JSON text). Real nextRTC clients
/// send `"to": null`; being lenient with scalars costs nothing and breaks no one.
fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    use serde::de::Error;
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Null => Ok(String::new()),
        serde_json::Value::String(s) => Ok(s),
        v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_)) => Ok(v.to_string()),
        _ => Err(D::Error::custom("expected a string")),
    }
}

fn lenient_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    use serde::de::Error;
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Null => Ok(BTreeMap::new()),
        serde_json::Value::Object(map) => map
            .into_iter()
            .map(|(k, v)| match v {
                serde_json::Value::Null => Ok((k, String::new())),
                serde_json::Value::String(s) => Ok((k, s)),
                v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_)) => {
                    Ok((k, v.to_string()))
                }
                _ => Err(D::Error::custom("custom values must be strings")),
            })
            .collect(),
        _ => Err(D::Error::custom("custom must be an object")),
    }
}

/// Conversation kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ConversationKind {
    /// Everyone connects to everyone.
    Mesh,
    /// The creator sends to every viewer; viewers connect to the broadcaster only.
    Broadcast,
}

impl ConversationKind {
    /// The wire spelling (`MESH` / `BROADCAST`).
    pub fn as_str(self) -> &'static str {
        match self {
            ConversationKind::Mesh => "MESH",
            ConversationKind::Broadcast => "BROADCAST",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        if s.is_empty() || s.eq_ignore_ascii_case("MESH") {
            Some(ConversationKind::Mesh)
        } else if s.eq_ignore_ascii_case("BROADCAST") {
            Some(ConversationKind::Broadcast)
        } else {
            None
        }
    }
}

/// The error codes of PROTOCOL.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorCode {
    MemberNotFound,
    InvalidRecipient,
    MemberInOtherConversation,
    ConversationNameOccupied,
    ConversationNotFound,
    BadMessage,
    MessageTooLarge,
    UnknownSignal,
    InvalidState,
    Unauthorized,
    ForbiddenOrigin,
    ViewerLimit,
    RateLimited,
    ServerBusy,
    NegotiationFailed,
}

impl ErrorCode {
    /// The wire spelling, e.g. `INVALID_STATE`.
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            MemberNotFound => "MEMBER_NOT_FOUND",
            InvalidRecipient => "INVALID_RECIPIENT",
            MemberInOtherConversation => "MEMBER_IN_OTHER_CONVERSATION",
            ConversationNameOccupied => "CONVERSATION_NAME_OCCUPIED",
            ConversationNotFound => "CONVERSATION_NOT_FOUND",
            BadMessage => "BAD_MESSAGE",
            MessageTooLarge => "MESSAGE_TOO_LARGE",
            UnknownSignal => "UNKNOWN_SIGNAL",
            InvalidState => "INVALID_STATE",
            Unauthorized => "UNAUTHORIZED",
            ForbiddenOrigin => "FORBIDDEN_ORIGIN",
            ViewerLimit => "VIEWER_LIMIT",
            RateLimited => "RATE_LIMITED",
            ServerBusy => "SERVER_BUSY",
            NegotiationFailed => "NEGOTIATION_FAILED",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message that could not be accepted, with the code to answer it with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ProtocolError {
    /// The wire error code.
    pub code: ErrorCode,
    /// A human-readable sentence for `custom.message`.
    pub message: String,
}

impl ProtocolError {
    /// Builds an error from a code and a sentence.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ProtocolError {
            code,
            message: message.into(),
        }
    }
}

/// A message from a member to the server, parsed and checked for shape. (The serde form is
/// the device's internal one, between its processes; the wire form is [`Envelope`].)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Incoming {
    /// Create a conversation (empty id: the server picks one).
    Create {
        conversation: String,
        kind: ConversationKind,
    },
    /// Join (or, unless join-only, create) a conversation.
    Join { conversation: String },
    /// The SDP offer for the pair with `to`.
    OfferResponse { to: String, sdp: String },
    /// The SDP answer for the pair with `to`.
    AnswerResponse { to: String, sdp: String },
    /// An ICE candidate (the JSON of an `RTCIceCandidate`) for `to`.
    Candidate { to: String, candidate: String },
    /// Leave the current conversation.
    Left,
    /// A text to one member (`to`) or to all the others.
    Text { to: Option<String>, content: String },
    /// Keep-alive; ignored.
    Ping,
    /// Ask the device to join this MESH conversation (extension).
    Invite { conversation: String },
    /// The sender cannot use what `to` sent it (an offer or answer, or a connection that
    /// never came up): the pair is abandoned and `to` is told why. Sent only by the device's
    /// own members; no text frame parses to it.
    NegotiationFailed { to: String, reason: String },
    /// A viewer asks its broadcast's broadcaster (the device) for the floor to talk
    /// (`content` `start`) or gives it back (`stop`) (extension).
    Talk { start: bool },
    /// The device's answer to `to`'s `talk`, or the end of its turn: on the wire a `talk`
    /// from the device with `content` the state and the sentence in `custom.message`. Sent
    /// only by the device's own members; no text frame parses to it.
    TalkState {
        to: String,
        state: TalkState,
        message: String,
    },
}

/// Where a viewer's talkback stands, as the device tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TalkState {
    /// The viewer has the floor: the device plays what it sends.
    On,
    /// The viewer's turn ended (it let go, talked too long, or the speaker failed).
    Off,
    /// Someone else is talking; the viewer may ask again when they stop.
    Busy,
    /// The device cannot play the viewer's sound at all (switched off, no speaker, no
    /// connection to it).
    Unavailable,
}

impl TalkState {
    /// The wire spelling, e.g. `busy`.
    pub fn as_str(self) -> &'static str {
        match self {
            TalkState::On => "on",
            TalkState::Off => "off",
            TalkState::Busy => "busy",
            TalkState::Unavailable => "unavailable",
        }
    }
}

/// Signals only the server may send; a client sending one gets `UNKNOWN_SIGNAL`.
const SERVER_ONLY: &[&str] = &[
    "created",
    "joined",
    "newJoined",
    "offerRequest",
    "answerRequest",
    "finalize",
    "end",
    "error",
];

impl Incoming {
    /// The one member the message is addressed to, if it names one.
    pub fn recipient(&self) -> Option<&str> {
        match self {
            Incoming::OfferResponse { to, .. }
            | Incoming::AnswerResponse { to, .. }
            | Incoming::Candidate { to, .. }
            | Incoming::NegotiationFailed { to, .. }
            | Incoming::TalkState { to, .. }
            | Incoming::Text { to: Some(to), .. } => Some(to),
            _ => None,
        }
    }

    /// Parses one text frame.
    pub fn parse(text: &str) -> Result<Incoming, ProtocolError> {
        // serde would also read a struct from a JSON array; the envelope is an object.
        if !text.trim_start().starts_with('{') {
            return Err(ProtocolError::new(
                ErrorCode::BadMessage,
                "a message is a JSON object",
            ));
        }
        let env: Envelope = serde_json::from_str(text).map_err(|e| {
            ProtocolError::new(ErrorCode::BadMessage, format!("not a nextRTC message: {e}"))
        })?;
        Incoming::from_envelope(env)
    }

    /// Interprets an already-decoded envelope.
    pub fn from_envelope(env: Envelope) -> Result<Incoming, ProtocolError> {
        let Envelope {
            to,
            signal,
            content,
            custom,
            ..
        } = env;
        let is = |name: &str| signal.eq_ignore_ascii_case(name);
        let needs_to = |name: &str, to: String| {
            if to.is_empty() {
                Err(ProtocolError::new(
                    ErrorCode::BadMessage,
                    format!("{name} needs a recipient in `to`"),
                ))
            } else {
                Ok(to)
            }
        };
        if is("create") {
            let ty = custom.get("type").map(String::as_str).unwrap_or("");
            let kind = ConversationKind::parse(ty).ok_or_else(|| {
                ProtocolError::new(
                    ErrorCode::BadMessage,
                    format!("conversation type must be MESH or BROADCAST, not {ty:?}"),
                )
            })?;
            Ok(Incoming::Create {
                conversation: content,
                kind,
            })
        } else if is("join") {
            if content.is_empty() {
                return Err(ProtocolError::new(
                    ErrorCode::BadMessage,
                    "join needs a conversation id in `content`",
                ));
            }
            Ok(Incoming::Join {
                conversation: content,
            })
        } else if is("offerResponse") {
            Ok(Incoming::OfferResponse {
                to: needs_to("offerResponse", to)?,
                sdp: content,
            })
        } else if is("answerResponse") {
            Ok(Incoming::AnswerResponse {
                to: needs_to("answerResponse", to)?,
                sdp: content,
            })
        } else if is("candidate") {
            Ok(Incoming::Candidate {
                to: needs_to("candidate", to)?,
                candidate: content,
            })
        } else if is("left") {
            Ok(Incoming::Left)
        } else if is("text") {
            Ok(Incoming::Text {
                to: (!to.is_empty()).then_some(to),
                content,
            })
        } else if is("ping") {
            Ok(Incoming::Ping)
        } else if is("invite") {
            if content.is_empty() {
                return Err(ProtocolError::new(
                    ErrorCode::BadMessage,
                    "invite needs a conversation id in `content`",
                ));
            }
            Ok(Incoming::Invite {
                conversation: content,
            })
        } else if is("talk") {
            let start = match content.as_str() {
                "start" => true,
                "stop" => false,
                _ => {
                    return Err(ProtocolError::new(
                        ErrorCode::BadMessage,
                        "talk needs `content` start or stop",
                    ))
                }
            };
            Ok(Incoming::Talk { start })
        } else if SERVER_ONLY.iter().any(|s| is(s)) {
            Err(ProtocolError::new(
                ErrorCode::UnknownSignal,
                format!("{signal:?} is sent by the server, not to it"),
            ))
        } else {
            let shown: String = signal.chars().take(64).collect();
            Err(ProtocolError::new(
                ErrorCode::UnknownSignal,
                format!("unknown signal {shown:?}"),
            ))
        }
    }
}

/// A message from the server to a member. (The serde form is the device's internal one,
/// between its processes; the wire form is [`Outgoing::to_envelope`].)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outgoing {
    /// The sender's conversation was created.
    Created {
        conversation: String,
        kind: ConversationKind,
    },
    /// The sender joined a conversation.
    Joined { conversation: String },
    /// `member` arrived in the receiver's conversation.
    NewJoined { member: String },
    /// The receiver must make an offer to `from`.
    OfferRequest { from: String },
    /// `from` offers; the receiver must answer.
    AnswerRequest { from: String, sdp: String },
    /// `from` answered the receiver's offer.
    Finalize { from: String, sdp: String },
    /// An ICE candidate from `from`.
    Candidate { from: String, candidate: String },
    /// A text from `from`.
    Text { from: String, content: String },
    /// `from` left the receiver's conversation.
    Left { from: String },
    /// The broadcast `conversation` ended because its broadcaster `from` left.
    End { from: String, conversation: String },
    /// Keep-alive that also tells the receiver its own id.
    Ping,
    /// `from` invites the device into its MESH `conversation` (sent to the device only).
    Invite { from: String, conversation: String },
    /// Something the receiver sent was refused.
    Error { code: ErrorCode, message: String },
    /// `from` (the device's member) could not use what the receiver sent it; on the wire an
    /// `error NEGOTIATION_FAILED` from that member, the reason in `custom.message`.
    NegotiationFailed { from: String, message: String },
    /// The viewer `from` asks the device for the floor to talk, or gives it back (sent to
    /// the device only).
    Talk { from: String, start: bool },
    /// The device's member `from` says where the receiver's talkback stands: on the wire a
    /// `talk` with `content` the state and the sentence in `custom.message`.
    TalkState {
        from: String,
        state: TalkState,
        message: String,
    },
}

impl Outgoing {
    /// Builds an error reply.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Outgoing::Error {
            code,
            message: message.into(),
        }
    }

    /// The camelCase signal name.
    pub fn signal(&self) -> &'static str {
        match self {
            Outgoing::Created { .. } => "created",
            Outgoing::Joined { .. } => "joined",
            Outgoing::NewJoined { .. } => "newJoined",
            Outgoing::OfferRequest { .. } => "offerRequest",
            Outgoing::AnswerRequest { .. } => "answerRequest",
            Outgoing::Finalize { .. } => "finalize",
            Outgoing::Candidate { .. } => "candidate",
            Outgoing::Text { .. } => "text",
            Outgoing::Left { .. } => "left",
            Outgoing::End { .. } => "end",
            Outgoing::Ping => "ping",
            Outgoing::Invite { .. } => "invite",
            Outgoing::Error { .. } | Outgoing::NegotiationFailed { .. } => "error",
            Outgoing::Talk { .. } | Outgoing::TalkState { .. } => "talk",
        }
    }

    /// The envelope for recipient `to`.
    pub fn to_envelope(&self, to: &str) -> Envelope {
        let mut env = Envelope {
            to: to.to_owned(),
            signal: self.signal().to_owned(),
            ..Envelope::default()
        };
        match self {
            Outgoing::Created { conversation, kind } => {
                env.content = conversation.clone();
                env.custom.insert("type".into(), kind.as_str().into());
            }
            Outgoing::Joined { conversation } => env.content = conversation.clone(),
            Outgoing::NewJoined { member } => {
                env.from = member.clone();
                env.content = member.clone();
            }
            Outgoing::OfferRequest { from } | Outgoing::Left { from } => env.from = from.clone(),
            Outgoing::AnswerRequest { from, sdp } | Outgoing::Finalize { from, sdp } => {
                env.from = from.clone();
                env.content = sdp.clone();
            }
            Outgoing::Candidate {
                from,
                candidate: content,
            }
            | Outgoing::Text { from, content } => {
                env.from = from.clone();
                env.content = content.clone();
            }
            Outgoing::End { from, conversation } | Outgoing::Invite { from, conversation } => {
                env.from = from.clone();
                env.content = conversation.clone();
            }
            Outgoing::Ping => {}
            Outgoing::Error { code, message } => {
                env.content = code.as_str().into();
                env.custom.insert("message".into(), message.clone());
            }
            Outgoing::NegotiationFailed { from, message } => {
                env.from = from.clone();
                env.content = ErrorCode::NegotiationFailed.as_str().into();
                env.custom.insert("message".into(), message.clone());
            }
            Outgoing::Talk { from, start } => {
                env.from = from.clone();
                env.content = if *start { "start" } else { "stop" }.into();
            }
            Outgoing::TalkState {
                from,
                state,
                message,
            } => {
                env.from = from.clone();
                env.content = state.as_str().into();
                env.custom.insert("message".into(), message.clone());
            }
        }
        env
    }

    /// The JSON text for recipient `to`.
    pub fn to_json(&self, to: &str) -> String {
        self.to_envelope(to).to_json()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: serde_json::Value) -> Result<Incoming, ProtocolError> {
        Incoming::parse(&v.to_string())
    }

    #[test]
    fn the_recipient_is_the_member_a_message_names() {
        let to = |m: Incoming| m.recipient().map(str::to_owned);
        assert_eq!(
            to(Incoming::Candidate {
                to: "a".into(),
                candidate: String::new()
            }),
            Some("a".into())
        );
        assert_eq!(
            to(Incoming::TalkState {
                to: "v".into(),
                state: TalkState::On,
                message: String::new()
            }),
            Some("v".into())
        );
        assert_eq!(
            to(Incoming::Text {
                to: None,
                content: String::new()
            }),
            None
        );
        assert_eq!(to(Incoming::Talk { start: true }), None);
    }

    #[test]
    fn talk_parses_and_goes_out_as_talk() {
        assert_eq!(
            parse(json!({"signal": "talk", "content": "start"})),
            Ok(Incoming::Talk { start: true })
        );
        assert_eq!(
            parse(json!({"signal": "talk", "content": "stop"})),
            Ok(Incoming::Talk { start: false })
        );
        assert_eq!(
            parse(json!({"signal": "talk", "content": "on"})).map_err(|e| e.code),
            Err(ErrorCode::BadMessage)
        );
        let env = Outgoing::TalkState {
            from: "camera".into(),
            state: TalkState::Busy,
            message: "someone is talking".into(),
        }
        .to_envelope("v");
        assert_eq!(
            (env.signal.as_str(), env.from.as_str(), env.content.as_str()),
            ("talk", "camera", "busy")
        );
        assert_eq!(env.custom["message"], "someone is talking");
    }

    #[test]
    fn nextrtc_client_shapes_parse() {
        // What nextrtc-js-client sends: `to: null`, content left out.
        assert_eq!(
            parse(json!({"from": null, "to": null, "signal": "join", "content": "room"})),
            Ok(Incoming::Join {
                conversation: "room".into()
            })
        );
        assert_eq!(
            parse(json!({"signal": "left"})),
            Ok(Incoming::Left),
            "missing fields read as empty"
        );
        assert_eq!(
            parse(json!({"signal": "create", "content": "", "custom": {"type": "BROADCAST"}})),
            Ok(Incoming::Create {
                conversation: String::new(),
                kind: ConversationKind::Broadcast
            })
        );
        assert_eq!(
            parse(json!({"signal": "create", "content": "x", "custom": null})),
            Ok(Incoming::Create {
                conversation: "x".into(),
                kind: ConversationKind::Mesh
            })
        );
    }

    #[test]
    fn every_client_signal_parses() {
        let cases = [
            (
                json!({"signal": "offerResponse", "to": "b", "content": "v=0"}),
                Incoming::OfferResponse {
                    to: "b".into(),
                    sdp: "v=0".into(),
                },
            ),
            (
                json!({"signal": "answerResponse", "to": "a", "content": "v=0"}),
                Incoming::AnswerResponse {
                    to: "a".into(),
                    sdp: "v=0".into(),
                },
            ),
            (
                json!({"signal": "candidate", "to": "a", "content": "{\"candidate\":\"c\"}"}),
                Incoming::Candidate {
                    to: "a".into(),
                    candidate: "{\"candidate\":\"c\"}".into(),
                },
            ),
            (
                json!({"signal": "text", "content": "hi"}),
                Incoming::Text {
                    to: None,
                    content: "hi".into(),
                },
            ),
            (
                json!({"signal": "text", "to": "b", "content": "hi"}),
                Incoming::Text {
                    to: Some("b".into()),
                    content: "hi".into(),
                },
            ),
            (json!({"signal": "ping"}), Incoming::Ping),
            (
                json!({"signal": "invite", "content": "room"}),
                Incoming::Invite {
                    conversation: "room".into(),
                },
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(parse(input.clone()), Ok(expected), "{input}");
        }
    }

    #[test]
    fn signals_are_case_insensitive_and_unknown_fields_ignored() {
        assert_eq!(
            parse(json!({"signal": "OFFERRESPONSE", "to": "b", "content": "s", "extra": [1]})),
            Ok(Incoming::OfferResponse {
                to: "b".into(),
                sdp: "s".into()
            })
        );
    }

    #[test]
    fn bad_shapes_are_refused_with_codes() {
        let code = |v: serde_json::Value| parse(v).unwrap_err().code;
        assert_eq!(
            Incoming::parse("not json").unwrap_err().code,
            ErrorCode::BadMessage
        );
        assert_eq!(code(json!([1, 2])), ErrorCode::BadMessage);
        assert_eq!(code(json!({"signal": {"a": 1}})), ErrorCode::BadMessage);
        assert_eq!(
            code(json!({"signal": "text", "custom": {"a": [1]}})),
            ErrorCode::BadMessage
        );
        assert_eq!(code(json!({"signal": "dance"})), ErrorCode::UnknownSignal);
        assert_eq!(code(json!({"signal": ""})), ErrorCode::UnknownSignal);
        assert_eq!(
            code(json!({"signal": "finalize"})),
            ErrorCode::UnknownSignal
        );
        assert_eq!(
            code(json!({"signal": "offerResponse", "content": "sdp"})),
            ErrorCode::BadMessage
        );
        assert_eq!(code(json!({"signal": "join"})), ErrorCode::BadMessage);
        assert_eq!(
            code(json!({"signal": "create", "custom": {"type": "STAR"}})),
            ErrorCode::BadMessage
        );
    }

    #[test]
    fn outgoing_matches_protocol_document() {
        let cases = [
            (
                Outgoing::Created {
                    conversation: "c".into(),
                    kind: ConversationKind::Broadcast,
                },
                json!({"from": "", "to": "me", "signal": "created", "content": "c", "custom": {"type": "BROADCAST"}}),
            ),
            (
                Outgoing::Joined {
                    conversation: "c".into(),
                },
                json!({"from": "", "to": "me", "signal": "joined", "content": "c", "custom": {}}),
            ),
            (
                Outgoing::NewJoined { member: "b".into() },
                json!({"from": "b", "to": "me", "signal": "newJoined", "content": "b", "custom": {}}),
            ),
            (
                Outgoing::OfferRequest { from: "b".into() },
                json!({"from": "b", "to": "me", "signal": "offerRequest", "content": "", "custom": {}}),
            ),
            (
                Outgoing::AnswerRequest {
                    from: "a".into(),
                    sdp: "o".into(),
                },
                json!({"from": "a", "to": "me", "signal": "answerRequest", "content": "o", "custom": {}}),
            ),
            (
                Outgoing::Finalize {
                    from: "b".into(),
                    sdp: "a".into(),
                },
                json!({"from": "b", "to": "me", "signal": "finalize", "content": "a", "custom": {}}),
            ),
            (
                Outgoing::Candidate {
                    from: "b".into(),
                    candidate: "{}".into(),
                },
                json!({"from": "b", "to": "me", "signal": "candidate", "content": "{}", "custom": {}}),
            ),
            (
                Outgoing::Text {
                    from: "b".into(),
                    content: "hi".into(),
                },
                json!({"from": "b", "to": "me", "signal": "text", "content": "hi", "custom": {}}),
            ),
            (
                Outgoing::Left { from: "b".into() },
                json!({"from": "b", "to": "me", "signal": "left", "content": "", "custom": {}}),
            ),
            (
                Outgoing::End {
                    from: "a".into(),
                    conversation: "c".into(),
                },
                json!({"from": "a", "to": "me", "signal": "end", "content": "c", "custom": {}}),
            ),
            (
                Outgoing::Ping,
                json!({"from": "", "to": "me", "signal": "ping", "content": "", "custom": {}}),
            ),
            (
                Outgoing::error(ErrorCode::InvalidState, "no"),
                json!({"from": "", "to": "me", "signal": "error", "content": "INVALID_STATE", "custom": {"message": "no"}}),
            ),
        ];
        for (out, expected) in cases {
            let got: serde_json::Value = serde_json::from_str(&out.to_json("me")).unwrap();
            assert_eq!(got, expected);
        }
    }
}
