//! Signaling as the device serves it: the hub that shares the pure conversation core
//! (`peercam-signaling`) between members, and the WebSocket transport.

pub mod hub;
pub mod server;

pub use peercam_signaling::{conversation, limits, protocol};
pub use peercam_signaling::{
    ConversationKind, ErrorCode, Incoming, Limits, MemberId, Outgoing, Settings, TalkState,
};

pub use hub::{Hub, HubStats, InternalMember, MemberHandle};
pub use server::{Admission, SignalingServer};
