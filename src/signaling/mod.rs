//! Signaling: the nextRTC protocol (pure), the conversation core (pure), the hub that shares
//! it between members, and the WebSocket transport.

pub mod conversation;
pub mod hub;
pub mod limits;
pub mod protocol;
pub mod server;

pub use conversation::{MemberId, Settings};
pub use hub::{Hub, HubStats, InternalMember, MemberHandle};
pub use protocol::{ConversationKind, ErrorCode, Incoming, Outgoing};
pub use server::{Limits, SignalingServer};
