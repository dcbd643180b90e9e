//! Arbitrary text frames through `Incoming::parse`.
//!
//! Properties:
//! - parsing never panics, and refuses only with the codes a malformed frame can earn;
//! - every accepted message, written back into an envelope (canonical camelCase signal, and
//!   again with the signal upper-cased), parses to the same `Incoming`;
//! - any envelope serde accepts survives `to_json` and a second decode unchanged, and
//!   interpreting it gives the same verdict as `parse`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use peercam_signaling::protocol::{Envelope, ErrorCode, Incoming};

/// The envelope a client would send for `msg`. Written independently of the parser so the
/// round trip checks the parser against the protocol, not against itself.
fn encode(msg: &Incoming) -> Envelope {
    let mut env = Envelope::default();
    let (signal, to, content) = match msg {
        Incoming::Create { conversation, kind } => {
            env.custom.insert("type".into(), kind.as_str().into());
            ("create", "", conversation.as_str())
        }
        Incoming::Join { conversation } => ("join", "", conversation.as_str()),
        Incoming::OfferResponse { to, sdp } => ("offerResponse", to.as_str(), sdp.as_str()),
        Incoming::AnswerResponse { to, sdp } => ("answerResponse", to.as_str(), sdp.as_str()),
        Incoming::Candidate { to, candidate } => ("candidate", to.as_str(), candidate.as_str()),
        Incoming::Left => ("left", "", ""),
        Incoming::Text { to, content } => {
            // `Some("")` would not survive the trip: an empty `to` means "everyone".
            assert_ne!(to.as_deref(), Some(""), "parse produced an empty recipient");
            ("text", to.as_deref().unwrap_or(""), content.as_str())
        }
        Incoming::Ping => ("ping", "", ""),
        Incoming::Invite { conversation } => ("invite", "", conversation.as_str()),
        Incoming::NegotiationFailed { .. } => {
            panic!("a text frame parsed to a message only the device's members send")
        }
    };
    env.signal = signal.into();
    env.to = to.into();
    env.content = content.into();
    // The server overwrites `from`, so whatever a client puts there must not matter.
    env.from = "ignored-sender".into();
    env
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    let parsed = Incoming::parse(text);
    match &parsed {
        Ok(msg) => {
            let mut env = encode(msg);
            let json = env.to_json();
            assert_eq!(
                Incoming::parse(&json).as_ref(),
                Ok(msg),
                "re-encoded as {json}"
            );
            // Signal names are case-insensitive on input.
            env.signal = env.signal.to_ascii_uppercase();
            let json = env.to_json();
            assert_eq!(
                Incoming::parse(&json).as_ref(),
                Ok(msg),
                "re-encoded as {json}"
            );
        }
        Err(e) => {
            // The shape of a single frame can only earn these two; the others are about
            // state, size or the connection and belong to other layers.
            assert!(
                matches!(e.code, ErrorCode::BadMessage | ErrorCode::UnknownSignal),
                "parse refused with {:?}",
                e.code
            );
        }
    }

    if let Ok(env) = serde_json::from_str::<Envelope>(text) {
        let json = env.to_json();
        let again: Envelope = serde_json::from_str(&json)
            .unwrap_or_else(|e| panic!("own output {json} does not decode: {e}"));
        assert_eq!(again, env);
        // `parse` only adds the "must be an object" check in front of the envelope decode.
        if text.trim_start().starts_with('{') {
            assert_eq!(Incoming::from_envelope(env), parsed);
        }
    }
});
