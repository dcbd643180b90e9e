//! What goes into a negotiation and what comes out: the events the worker's loop sees and
//! the actions it must carry out, as plain data. The objects an action needs from GStreamer
//! (caps `C`, a local description `D`) are type parameters, carried through untouched.
//!
//! Types only: what to do with them is decided in the negotiation, and carried out in the
//! worker's glue.

use std::time::Duration;

use peercam_signaling::Incoming;

use peercam_sdp::Codec;

use crate::peer::PeerKey;

/// Which description a local SDP is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdpKind {
    /// Our offer (the device offers).
    Offer,
    /// Our answer to a remote offer.
    Answer,
}

/// A peer connection's state, as webrtcbin reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    /// Nothing started yet.
    New,
    /// ICE or DTLS under way.
    Connecting,
    /// Media can flow.
    Connected,
    /// Lost for now; may come back.
    Disconnected,
    /// Gave up.
    Failed,
    /// Closed.
    Closed,
    /// A state this build does not know.
    Other,
}

/// The caps an offer is made with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OfferCaps<C> {
    /// These caps: the running stream's, or the branch's first.
    Caps(C),
    /// H.264 of any profile (the offer's text then states the one the stream had before).
    AnyProfile,
}

/// What the loop sees about one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<C, D> {
    /// The viewer asks the device for an offer.
    OfferRequest,
    /// A remote offer for the device to answer.
    AnswerRequest {
        /// The offer's SDP text.
        sdp: String,
    },
    /// The branch a [`Action::BuildOfferer`] asked for is built and attached.
    OffererBuilt {
        /// The offer caps of the running stream, when its caps are known already.
        stream_caps: Option<C>,
    },
    /// The branch a [`Action::BuildAnswerer`] asked for is built and attached.
    AnswererBuilt,
    /// The viewer's answer to our offer.
    RemoteAnswer {
        /// The answer's SDP text.
        sdp: String,
    },
    /// A remote ICE candidate, in the protocol's JSON.
    RemoteCandidate {
        /// `RTCIceCandidate` JSON as the remote sent it.
        json: String,
    },
    /// The stream's caps reached the branch.
    CapsReady {
        /// The caps, for an offer or for applying the remote offer.
        caps: C,
        /// Their `profile-level-id`, if they state one.
        profile: Option<String>,
    },
    /// The remote offer was applied (answerer).
    RemoteOfferSet,
    /// Our offer or answer was made.
    LocalDescription {
        /// Offer or answer.
        kind: SdpKind,
        /// Its text, or why it could not be written.
        sdp: Result<String, String>,
        /// The description itself, to apply.
        description: D,
    },
    /// A local ICE candidate.
    LocalCandidate {
        /// The media section's index.
        mline: u32,
        /// The `candidate:` line.
        candidate: String,
    },
    /// Every local candidate has been gathered.
    GatheringComplete,
    /// [`super::GATHER_WAIT`] has passed since a description was applied.
    GatheringWaitOver,
    /// The peer connection changed state.
    State(Connection),
    /// Negotiation failed inside webrtcbin.
    Failed(String),
    /// GStreamer refused something of this peer's (its branch failed, or the remote answer
    /// could not be applied): why, in a sentence for the person.
    Fault(String),
    /// The branch a build action asked for could not be built: why.
    BuildFailed(String),
    /// The remote member left.
    Left,
}

/// What the loop must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action<C, D> {
    /// Detach and drop the peer's branch (stopping capture when it was the last).
    Remove(PeerKey),
    /// Build an offering branch and attach it, then report [`Event::OffererBuilt`] (or log
    /// why it could not be built).
    BuildOfferer(PeerKey),
    /// Build an answering branch for this remote offer and attach it, then report
    /// [`Event::AnswererBuilt`] (or log why it could not be built).
    BuildAnswerer {
        /// The peer.
        key: PeerKey,
        /// The remote offer's SDP text (checked: `peercam_sdp::check_offer`).
        sdp: String,
        /// The offer's video section to answer.
        mline: u32,
        /// The payload type to send under (0..=127).
        pt: u8,
        /// The codec to send: which shared encode feeds the branch.
        codec: Codec,
    },
    /// Make our offer with these caps.
    CreateOffer {
        /// The peer.
        key: PeerKey,
        /// The caps to offer.
        caps: OfferCaps<C>,
    },
    /// Apply the remote offer, labelled with these (our stream's) caps.
    ApplyOffer {
        /// The peer.
        key: PeerKey,
        /// Our stream's caps.
        caps: C,
    },
    /// Decline the remote offer's other media and make our answer.
    CreateAnswer(PeerKey),
    /// Apply our own description (this starts gathering).
    SetLocal {
        /// The peer.
        key: PeerKey,
        /// The description from [`Event::LocalDescription`].
        description: D,
    },
    /// Report [`Event::GatheringWaitOver`] for this peer after `after`.
    WakeAfter {
        /// The peer.
        key: PeerKey,
        /// How long from now.
        after: Duration,
    },
    /// Feed the branch from `codec`'s encode and apply the remote answer; on failure say why
    /// and report [`Event::Fault`].
    ApplyAnswer {
        /// The peer.
        key: PeerKey,
        /// The answer's SDP text.
        sdp: String,
        /// The codec the answer accepted.
        codec: Codec,
    },
    /// Give webrtcbin a remote candidate.
    AddCandidate {
        /// The peer.
        key: PeerKey,
        /// The media section's index.
        mline: u32,
        /// The `candidate:` line.
        candidate: String,
    },
    /// Resolve the candidate's `.local` name off the loop; it comes back as a remote
    /// candidate with the address in its place.
    Resolve {
        /// The peer.
        key: PeerKey,
        /// The media section's index.
        mline: u32,
        /// The `candidate:` line.
        candidate: String,
        /// The `.local` name.
        host: String,
    },
    /// Send a message to the remote member through the device.
    Send {
        /// The device's member that speaks.
        member: String,
        /// The message.
        msg: Incoming,
    },
    /// A peer connected: have the encoder send a keyframe and the pipeline recalculate its
    /// latency.
    Refresh,
    /// Tell the device the stream's H.264 profile (later workers state it at once).
    TellProfile(String),
    /// Tell the device that this member of its has no peer left.
    Release {
        /// The device's member.
        member: String,
    },
}
