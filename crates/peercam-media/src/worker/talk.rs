//! Talkback's glue: a viewer's `talk` asks for the floor ([`crate::talk`]); the holder's
//! sound is let through to the speaker ([`crate::speaker`], opened only while someone talks)
//! and every viewer that asks is told where it stands, in words
//! (`talk` on/off/busy/unavailable, see PROTOCOL.md's talkback section).

use std::time::Instant;

use gstreamer_app as gst_app;
use tokio::sync::mpsc;

use super::run::Worker;
use crate::peer::PeerKey;
use crate::speaker::{Speaker, SpeakerChoice};
use crate::talk::{Ask, Floor, SOMEONE_TALKING, TOO_LONG};
use peercam_signaling::{Incoming, TalkState};
use peercam_wire::Talkback;

/// The worker's talkback: the speaker, if there is one, and the floor.
pub(super) struct Talk {
    speaker: Option<Speaker>,
    /// Why there is no speaker, as a viewer asking to talk is told.
    unavailable: String,
    floor: Floor<PeerKey>,
}

impl Talk {
    /// The speaker `choice` names, built (stopped) now so that its echo probe exists before
    /// the microphone's canceller looks for it.
    pub(super) fn new(
        talkback: &Talkback,
        choice: &SpeakerChoice,
        errors: mpsc::Sender<String>,
    ) -> Talk {
        let mut unavailable = match talkback {
            Talkback::None => "talkback is switched off on this camera".to_owned(),
            Talkback::Select { .. } => "this camera has no speaker to talk through".to_owned(),
        };
        let speaker = choice.launch.as_deref().and_then(|output| {
            match Speaker::build(output, choice.echo_cancel, errors) {
                Ok(speaker) => Some(speaker),
                Err(e) => {
                    log::warn!("no talkback: {e}");
                    unavailable = format!("the camera's speaker cannot be used: {e}");
                    None
                }
            }
        });
        Talk {
            speaker,
            unavailable,
            floor: Floor::default(),
        }
    }

    /// Where a viewer's sound goes, when the device has a speaker.
    pub(super) fn input(&self) -> Option<gst_app::AppSrc> {
        self.speaker.as_ref().map(Speaker::input)
    }

    /// Someone holds the floor.
    pub(super) fn talking(&self) -> bool {
        self.floor.holder().is_some()
    }

    /// Peer `key` is gone: if it was talking, the speaker closes.
    pub(super) fn gone(&mut self, key: &PeerKey) {
        if self.floor.release(key) {
            self.close();
        }
    }

    fn close(&self) {
        if let Some(speaker) = &self.speaker {
            speaker.stop();
        }
    }
}

impl Worker {
    /// Viewer `from` of device member `me` asks for the floor (`start`) or lets go.
    pub(super) fn on_talk(&mut self, me: &str, from: String, start: bool) {
        let key = (me.to_owned(), from);
        if !start {
            if self.talk.floor.release(&key) {
                self.set_talking(&key, false);
                self.talk.close();
                log::info!(peer = key.1.as_str(); "talkback: stopped talking");
            }
            return self.tell(&key, TalkState::Off, "");
        }
        // Only a viewer whose connection is up may take the floor: one that never connects
        // must not keep the others off the speaker until its negotiation times out.
        let hears = self
            .peers
            .get(&key)
            .filter(|_| self.negotiation.is_connected(&key))
            .map(|p| p.sound_in().can_hear());
        let refusal = match (&self.talk.speaker, hears) {
            (None, _) => Some(self.talk.unavailable.clone()),
            (Some(_), None) => Some(
                "the camera has no connection to you yet; try again once its video plays".into(),
            ),
            (Some(_), Some(false)) => Some(
                "this connection to the camera carries no sound from you; reload the page".into(),
            ),
            (Some(_), Some(true)) => None,
        };
        if let Some(why) = refusal {
            return self.tell(&key, TalkState::Unavailable, &why);
        }
        let was = self.talk.floor.holder().cloned();
        match self.talk.floor.ask(&key, Instant::now()) {
            Ask::Busy => self.tell(&key, TalkState::Busy, SOMEONE_TALKING),
            Ask::Granted if was.as_ref() == Some(&key) => {
                self.tell(&key, TalkState::On, "the camera plays what you say")
            }
            Ask::Granted => {
                let opened = self.talk.speaker.as_ref().map(Speaker::start);
                if let Some(Err(e)) = opened {
                    self.talk.floor.release(&key);
                    self.talk.close();
                    log::warn!("talkback: {e}");
                    let why = format!("the camera's speaker could not be opened: {e}");
                    return self.tell(&key, TalkState::Unavailable, &why);
                }
                self.set_talking(&key, true);
                log::info!(peer = key.1.as_str(); "talkback: talking");
                self.tell(&key, TalkState::On, "the camera plays what you say");
            }
        }
    }

    /// Each tick: a turn that lasted too long ends.
    pub(super) fn talk_tick(&mut self) {
        if let Some(key) = self.talk.floor.expired(Instant::now()) {
            self.set_talking(&key, false);
            self.talk.close();
            log::info!(peer = key.1.as_str(); "talkback: the turn lasted too long");
            self.tell(&key, TalkState::Off, TOO_LONG);
        }
    }

    /// The speaker's pipeline failed: the turn ends (the next press opens it again).
    pub(super) fn on_speaker_error(&mut self, error: &str) {
        self.talk.close();
        if let Some(key) = self.talk.floor.clear() {
            self.set_talking(&key, false);
            let why = format!("the camera's speaker failed: {error}");
            self.tell(&key, TalkState::Off, &why);
        }
    }

    fn set_talking(&self, key: &PeerKey, on: bool) {
        if let Some(peer) = self.peers.get(key) {
            peer.sound_in().set_talking(on);
        }
    }

    fn tell(&self, (member, viewer): &PeerKey, state: TalkState, message: &str) {
        self.send(
            member,
            Incoming::TalkState {
                to: viewer.clone(),
                state,
                message: message.to_owned(),
            },
        );
    }
}
