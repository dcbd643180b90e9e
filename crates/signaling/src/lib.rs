//! The nextRTC signaling protocol and conversation core of peercam, pure: no sockets, no
//! runtime, no clock (time is an argument). The serving program (`peercam`) wraps it in a hub
//! and a WebSocket transport; the media program reads and writes its messages; the fuzz
//! targets drive it directly.
//!
//! - [`protocol`]: the wire envelope and signals (`../shared/PROTOCOL.md` is the contract).
//! - [`conversation`]: conversations, members and pair states, `handle(from, msg) -> deliveries`;
//!   [`conversation::capacity`] says when its maps give back the room of members who left.
//! - [`limits`]: the transport's limits and its pure admission rules (Origin, rate, liveness).

pub mod conversation;
pub mod limits;
pub mod protocol;

pub use conversation::{MemberId, Settings};
pub use limits::Limits;
pub use protocol::{ConversationKind, ErrorCode, Incoming, Outgoing, TalkState};
