//! The worker's loop and its GStreamer glue: it reads the device's messages, the peers'
//! events, resolved candidates, pipeline errors and a tick, feeds them to the negotiation
//! ([`crate::negotiation`]) and carries out what it returns on the capture ([`Fanout`]), the
//! GStreamer peers and the socket to the device; after each, it reports the counts.
//!
//! The loop is single-threaded; GStreamer callbacks only post events to it. It owns the
//! GStreamer peers (keyed like the negotiation's) and the capture, which plays only while a
//! peer is attached. It must not decide when to offer, answer, send or release a peer: the
//! negotiation does; nor when the camera source has failed or is reopened: its health
//! ([`crate::source_health`], through [`SourceWatch`]) does, from the source's errors and,
//! each tick, its frame count. Still pictures are run.rs/snapshot.rs's, on the same capture.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_webrtc as gst_webrtc;
use tokio::io::BufReader;
use tokio::sync::mpsc;

use super::bus::PipelineError;
use super::mdns::Resolver;
use super::pictures::Pictures;
use super::source::SourceWatch;
use crate::fanout::Fanout;
use crate::jpeg::Delivery;
use crate::negotiation::{Action, Connection, Event, Negotiation, OfferCaps, SdpKind};
use crate::peer::{
    early_offer_caps, offer_caps, profile_of, EventSender, Peer, PeerEvent, PeerKey, Role,
    SILENCE_LIMIT,
};
use crate::retiring::Retiring;
use crate::source_health;
use crate::MediaError;
use peercam_sdp::Codec;
use peercam_signaling::{Incoming, Outgoing};
use peercam_wire::{
    self as wire, CameraSnapshot, FromWorker, IceSettings, ToWorker, WorkerSettings,
};

mod snapshot;

/// How often abandoned negotiations are looked for (and so, while capturing, how often the
/// frame count is reported).
const TICK: Duration = Duration::from_millis(250);

/// The device's messages, a line each.
type Lines = tokio::io::Lines<BufReader<tokio::net::unix::OwnedReadHalf>>;

/// The negotiation, carrying GStreamer caps and descriptions through to its actions.
type Peers = Negotiation<gst::Caps, gst_webrtc::WebRTCSessionDescription>;

/// What the negotiation is given.
type PeerInput = Event<gst::Caps, gst_webrtc::WebRTCSessionDescription>;

/// What the negotiation asks for.
type PeerAction = Action<gst::Caps, gst_webrtc::WebRTCSessionDescription>;

/// The loop's state.
pub(super) struct Worker {
    /// The camera's member id and standing conversation.
    conversation: String,
    /// ICE addresses and STUN for every peer.
    ice: IceSettings,
    /// The DTLS certificate and key (PEM) every peer presents, if the device gave one.
    dtls_pem: Option<String>,
    /// The capture's launch line.
    launch: String,
    /// The microphone's shared encode, if there is sound (see [`crate::audio`]).
    audio: Option<String>,
    /// The codecs it can send, in the camera's order of preference.
    codecs: Vec<Codec>,
    /// Messages to the device.
    out: mpsc::Sender<FromWorker>,
    /// Where the peers' GStreamer callbacks post their events.
    events: EventSender,
    /// `.local` candidates, once resolved, come back in as if the viewer had sent them.
    mdns: Resolver,
    /// Built on the first peer, dropped (capture stopped) after the last.
    fanout: Option<Fanout>,
    /// The encoders' rates and who watches the small encode, from the viewers' reports,
    /// while capturing.
    rate: Option<super::rate::Rates>,
    /// The camera source's health while capturing, when the capture has a source switch.
    health: Option<SourceWatch>,
    /// Every peer's negotiation.
    pub(super) negotiation: Peers,
    /// The GStreamer peers, by the negotiation's keys.
    pub(super) peers: HashMap<PeerKey, Peer>,
    /// Departed peers, out of the pipeline, waiting for their webrtcbin to settle before
    /// they are stopped.
    retiring: Retiring<Peer>,
    /// When to hand the memory of released peers back to the system.
    trim: wire::memory::ReleaseTrim,
    /// Encoded frames of the camera's picture since start (not the placeholder's), advanced
    /// by a pad probe on the tee: the device's proof that the camera works (see bus.rs).
    frames: Arc<AtomicU64>,
    /// Pipeline errors, from the bus.
    bus_errors: mpsc::Sender<PipelineError>,
    /// `Signal` messages handled.
    handled: u64,
    /// What was last reported to the device.
    reported: Option<(CameraSnapshot, u64)>,
    /// Priming has been started (it is done once per worker).
    primed: bool,
    /// Still pictures being taken.
    pictures: Pictures,
    /// Talkback: the speaker and who holds the floor (see talk.rs).
    pub(super) talk: super::talk::Talk,
}

/// Where the worker's parts send what they have to say.
pub(super) struct Channels {
    /// Messages to the device.
    pub out: mpsc::Sender<FromWorker>,
    /// The peers' events.
    pub events: EventSender,
    /// Resolved `.local` candidates.
    pub resolved: mpsc::Sender<(String, Outgoing)>,
    /// Errors of the capture pipeline.
    pub bus_errors: mpsc::Sender<PipelineError>,
    /// Errors of the speaker's pipeline.
    pub speaker_errors: mpsc::Sender<String>,
}

impl Worker {
    /// A worker with no peers and the capture stopped.
    pub(super) fn new(
        settings: WorkerSettings,
        started: super::start::Started,
        channels: Channels,
        pictures: Pictures,
    ) -> Worker {
        let Channels {
            out,
            events,
            resolved,
            bus_errors,
            speaker_errors,
        } = channels;
        let super::start::Started {
            launch,
            audio,
            speaker,
            ..
        } = started;
        let codecs = Fanout::codecs_of(&launch);
        let talk = super::talk::Talk::new(&settings.talkback, &speaker, speaker_errors);
        Worker {
            conversation: settings.conversation,
            ice: settings.ice,
            dtls_pem: settings.dtls.as_ref().map(|d| d.pem.clone()),
            launch,
            audio,
            out,
            events,
            mdns: Resolver::new(resolved),
            fanout: None,
            rate: None,
            health: None,
            negotiation: Negotiation::new(
                settings.negotiation_timeout,
                settings.stream_profile,
                settings.dtls.map(|d| d.fingerprint),
            )
            .with_codecs(&codecs),
            codecs,
            peers: HashMap::new(),
            retiring: Retiring::new(),
            trim: wire::memory::ReleaseTrim::new(),
            frames: Arc::new(AtomicU64::new(0)),
            bus_errors,
            handled: 0,
            reported: None,
            primed: false,
            pictures,
            talk,
        }
    }

    /// Serves until the device says stop or goes away, then closes every peer and stops the
    /// capture.
    pub(super) async fn run(
        &mut self,
        mut lines: Lines,
        mut resolved: mpsc::Receiver<(String, Outgoing)>,
        mut events: mpsc::Receiver<(PeerKey, PeerEvent)>,
        mut bus_errors: mpsc::Receiver<PipelineError>,
        mut pictures: mpsc::Receiver<Delivery>,
        mut speaker_errors: mpsc::Receiver<String>,
    ) {
        let mut tick = tokio::time::interval(TICK);
        loop {
            tokio::select! {
                line = lines.next_line() => match line {
                    Ok(Some(line)) if line.len() <= wire::MAX_LINE => {
                        match wire::decode::<ToWorker>(&line) {
                            Ok(ToWorker::Signal { member, msg }) => {
                                self.on_signal(&member, msg);
                                self.handled += 1;
                            }
                            Ok(ToWorker::Prime) => self.prime(),
                            Ok(ToWorker::Snapshot { id, spec }) => self.take_picture(id, spec),
                            Ok(ToWorker::Stop) => break,
                            Ok(ToWorker::Start(_)) => log::warn!("worker already started"),
                            Err(e) => log::warn!("bad message from the device: {e}"),
                        }
                    }
                    Ok(Some(_)) => log::warn!("oversized message from the device dropped"),
                    // The device closed the socket or is gone.
                    Ok(None) | Err(_) => break,
                },
                Some(error) = bus_errors.recv() => self.on_pipeline_error(error),
                Some((member, msg)) = resolved.recv() => self.on_signal(&member, msg),
                Some((key, ev)) = events.recv() => self.on_event(key, ev),
                Some((number, jpeg)) = pictures.recv() => self.picture_delivered(number, jpeg),
                Some(error) = speaker_errors.recv() => self.on_speaker_error(&error),
                _ = tick.tick() => {
                    self.pictures_overdue();
                    let actions = self.negotiation.tick(Instant::now());
                    self.carry_out(actions);
                    self.on_source_tick();
                    self.reap_overdue();
                    self.drop_silent();
                    self.talk_tick();
                    if let (Some(rate), Some(fanout)) = (self.rate.as_mut(), self.fanout.as_mut()) {
                        rate.follow(&mut self.peers, fanout, Instant::now());
                    }
                    if self.trim.due(Instant::now()) {
                        wire::memory::release_free_memory();
                    }
                }
            }
            self.report();
        }
        let actions = self.negotiation.clear();
        self.carry_out(actions);
        self.stop_capture();
        for peer in self.retiring.drain() {
            peer.stop();
        }
    }

    /// Drops the capture (camera and encoder stop) and the source's health with it; the
    /// pictures being taken from it are answered that it stopped.
    fn stop_capture(&mut self) {
        self.health = None;
        self.rate = None;
        self.fanout = None;
        self.capture_stopped();
    }

    /// Starts the rehearsal of a session, once, and only while nobody is served.
    fn prime(&mut self) {
        if self.primed || self.fanout.is_some() || !self.negotiation.is_empty() {
            return;
        }
        self.primed = true;
        let key = (self.conversation.clone(), "prime".to_owned());
        super::prime::spawn(
            self.launch.clone(),
            self.codecs.clone(),
            self.ice.clone(),
            self.dtls_pem.clone(),
            key,
            self.events.clone(),
        );
    }

    pub(super) fn send(&self, member: &str, msg: Incoming) {
        let msg = FromWorker::Send {
            member: member.to_owned(),
            msg,
        };
        if self.out.try_send(msg).is_err() {
            log::warn!("the device is not reading; message dropped");
        }
    }

    /// Sends the counts when they or the number of messages handled changed since the last
    /// report: after each message and event, and (for the frame count) each tick while
    /// capturing. The device knows the counts are current when `handled` equals what it sent.
    fn report(&mut self) {
        let now = (self.snapshot(), self.handled);
        if self.reported == Some(now) {
            return;
        }
        self.reported = Some(now);
        let _ = self.out.try_send(FromWorker::Stats {
            stats: now.0,
            handled: now.1,
        });
    }

    /// The counts as reported to the device.
    fn snapshot(&self) -> CameraSnapshot {
        CameraSnapshot {
            peers: self.negotiation.len(),
            branches: self.fanout.as_ref().map_or(0, |f| f.branches()),
            connected: self.negotiation.connected(),
            frames: self.frames.load(Ordering::Relaxed),
            capturing: self.fanout.is_some(),
            h264_encoders: self.fanout.as_ref().map_or(0, |f| f.encoders().0),
            vp8_encoders: self.fanout.as_ref().map_or(0, |f| f.encoders().1),
            vp8_branches: self.fanout.as_ref().map_or(0, |f| f.vp8_branches()),
            small_encoders: self.fanout.as_ref().map_or(0, |f| f.small_encoders()),
            small_branches: self.fanout.as_ref().map_or(0, |f| f.small_branches()),
            bitrate_kbps: self.fanout.as_ref().map_or(0, |f| f.bitrate() / 1000),
            audio_encoders: self.fanout.as_ref().map_or(0, |f| f.audio_encoders()),
            listeners: self.fanout.as_ref().map_or(0, |f| f.listeners()),
            audio_failed: self.fanout.as_ref().is_some_and(|f| f.audio_failed()),
            talking: self.talk.talking(),
        }
    }

    fn on_signal(&mut self, me: &str, msg: Outgoing) {
        let (from, event) = match msg {
            Outgoing::OfferRequest { from } => (from, Event::OfferRequest),
            Outgoing::Finalize { from, sdp } => (from, Event::RemoteAnswer { sdp }),
            Outgoing::AnswerRequest { from, sdp } => (from, Event::AnswerRequest { sdp }),
            Outgoing::Candidate { from, candidate } => {
                (from, Event::RemoteCandidate { json: candidate })
            }
            Outgoing::Left { from } => (from, Event::Left),
            Outgoing::End { .. } => {
                let actions = self.negotiation.member_done(me);
                return self.carry_out(actions);
            }
            Outgoing::Error { code, message } => {
                log::warn!(member = me; "signaling error {code}: {message}");
                let actions = self.negotiation.member_done(me);
                return self.carry_out(actions);
            }
            Outgoing::Talk { from, start } => return self.on_talk(me, from, start),
            Outgoing::Created { .. }
            | Outgoing::Joined { .. }
            | Outgoing::NewJoined { .. }
            | Outgoing::Text { .. }
            | Outgoing::Invite { .. }
            | Outgoing::NegotiationFailed { .. }
            | Outgoing::TalkState { .. }
            | Outgoing::Ping => return,
        };
        self.handle(&(me.to_owned(), from), event);
    }

    fn on_event(&mut self, key: PeerKey, ev: PeerEvent) {
        let event = match ev {
            PeerEvent::Settled(number) => {
                if let Some(peer) = self.retiring.settled(number) {
                    self.reap(peer);
                }
                return;
            }
            PeerEvent::CapsReady(caps) => Event::CapsReady {
                profile: profile_of(&caps),
                caps,
            },
            PeerEvent::RemoteOfferSet => Event::RemoteOfferSet,
            PeerEvent::LocalDescription(desc) => Event::LocalDescription {
                kind: match desc.type_() {
                    gst_webrtc::WebRTCSDPType::Offer => SdpKind::Offer,
                    _ => SdpKind::Answer,
                },
                sdp: desc.sdp().as_text().map_err(|e| e.to_string()),
                description: desc,
            },
            PeerEvent::LocalCandidate { mline, candidate } => {
                Event::LocalCandidate { mline, candidate }
            }
            PeerEvent::State(state) => Event::State(connection(state)),
            PeerEvent::GatheringComplete => Event::GatheringComplete,
            PeerEvent::GatheringWaitOver => Event::GatheringWaitOver,
            PeerEvent::Failed(why) => Event::Failed(why),
        };
        self.handle(&key, event);
    }

    /// A failure inside one peer's branch costs only that peer (its member is told why); a
    /// failure of the camera source behind the switch is the source's health's to handle
    /// (every viewer stays, on the placeholder); a failure of the encoder or the tee (or of a
    /// capture without a switch) ends every peer (their viewers see the connection drop and
    /// can rejoin) and capture restarts with the next viewer.
    fn on_pipeline_error(&mut self, error: PipelineError) {
        if let Some(number) = error.picture {
            return self.picture_failed(number, &error.message);
        }
        let in_peer = error
            .peer
            .as_deref()
            .and_then(|remote| self.peers.keys().find(|k| k.1 == remote).cloned());
        match in_peer {
            Some(key) => {
                let why = format!("the camera's connection to you failed: {}", error.message);
                self.handle(&key, Event::Fault(why));
            }
            // An error from a branch already released is about nobody.
            None if error.peer.is_some() => {}
            None if error.audio => {
                if let Some(fanout) = self.fanout.as_mut() {
                    if !fanout.audio_failed() {
                        log::warn!(
                            "audio source failed; the sound is cut off, the video goes on: {}",
                            error.message
                        );
                        fanout.cut_audio();
                    }
                }
            }
            None if error.source && self.health.is_some() => {
                log::warn!("camera source failed: {}", error.message);
                self.on_source(source_health::Event::Error);
            }
            None if self.fanout.is_some() => {
                log::error!("capture failed; closing every peer");
                let actions = self.negotiation.clear();
                self.carry_out(actions);
                self.stop_capture();
            }
            None => {}
        }
    }

    /// Each tick: the source's frame count, for its health to find a stall or a return.
    fn on_source_tick(&mut self) {
        let switch = self.fanout.as_ref().and_then(|f| f.switch());
        if let Some(frames) = switch.map(|s| s.frames()) {
            self.on_source(source_health::Event::Tick { frames });
        }
    }

    /// Feeds one event to the source's health, which acts on the switch; a new picture
    /// starts with a keyframe rather than with a large change.
    fn on_source(&mut self, event: source_health::Event) {
        let (Some(watch), Some(fanout)) = (self.health.as_mut(), self.fanout.as_ref()) else {
            return;
        };
        let Some(switch) = fanout.switch() else {
            return;
        };
        if watch.handle(switch, Instant::now(), event) {
            fanout.force_keyframe();
        }
    }

    /// Feeds one event to the negotiation and carries out what it says.
    fn handle(&mut self, key: &PeerKey, event: PeerInput) {
        let actions = self.negotiation.handle(Instant::now(), key, event);
        self.carry_out(actions);
    }

    fn carry_out(&mut self, actions: Vec<PeerAction>) {
        for action in actions {
            self.act(action);
        }
    }

    fn act(&mut self, action: PeerAction) {
        match action {
            Action::Remove(key) => self.remove_peer(&key),
            Action::BuildOfferer(key) => match self.build(&key, None) {
                Ok(()) => {
                    let stream_caps = self
                        .fanout
                        .as_ref()
                        .and_then(|f| f.current_caps())
                        .and_then(|c| offer_caps(&c));
                    self.handle(&key, Event::OffererBuilt { stream_caps });
                }
                Err(e) => {
                    log::warn!(peer = key.1.as_str(); "cannot serve viewer: {e}");
                    self.handle(&key, Event::BuildFailed(e.to_string()));
                }
            },
            Action::BuildAnswerer {
                key,
                sdp,
                mline,
                pt,
                codec,
            } => match self.build(&key, Some((&sdp, mline, pt, codec))) {
                Ok(()) => self.handle(&key, Event::AnswererBuilt),
                Err(e) => {
                    log::warn!(peer = key.1.as_str(); "cannot answer: {e}");
                    self.handle(&key, Event::BuildFailed(e.to_string()));
                }
            },
            Action::CreateOffer { key, caps } => {
                if let Some(peer) = self.peers.get(&key) {
                    match caps {
                        OfferCaps::Caps(caps) => peer.create_offer(&caps),
                        OfferCaps::AnyProfile => peer.create_offer(&early_offer_caps()),
                    }
                }
            }
            Action::ApplyOffer { key, caps } => {
                if let Some(peer) = self.peers.get_mut(&key) {
                    peer.apply_offer(&caps);
                }
            }
            Action::CreateAnswer(key) => {
                if let Some(peer) = self.peers.get(&key) {
                    peer.decline_other_media();
                    peer.create_answer();
                }
            }
            Action::SetLocal { key, description } => {
                if let Some(peer) = self.peers.get(&key) {
                    peer.set_local(&description);
                }
            }
            Action::WakeAfter { key, after } => {
                let tx = self.events.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(after).await;
                    let _ = tx.send((key, PeerEvent::GatheringWaitOver)).await;
                });
            }
            Action::ApplyAnswer { key, sdp, codec } => {
                let applied = match self.refeed(&key, codec) {
                    Ok(Some(peer)) => peer.set_remote_answer(&sdp),
                    Ok(None) => Ok(()),
                    Err(e) => Err(e),
                };
                if let Err(e) = applied {
                    log::warn!(peer = key.1.as_str(); "{e}");
                    let why = format!("the camera could not use your answer: {e}");
                    self.handle(&key, Event::Fault(why));
                }
            }
            Action::AddCandidate {
                key,
                mline,
                candidate,
            } => {
                if let Some(peer) = self.peers.get(&key) {
                    peer.add_candidate(mline, &candidate);
                }
            }
            Action::Resolve {
                key,
                mline,
                candidate,
                host,
            } => self.mdns.resolve_later(key, mline, candidate, host),
            Action::Send { member, msg } => self.send(&member, msg),
            Action::Refresh => {
                if let Some(f) = &self.fanout {
                    f.force_keyframe();
                    let _ = f.pipeline().recalculate_latency();
                }
            }
            Action::TellProfile(profile) => {
                let _ = self.out.try_send(FromWorker::Stream {
                    profile_level_id: profile,
                });
            }
            Action::Release { member } => {
                let _ = self.out.try_send(FromWorker::Release { member });
            }
        }
    }

    fn fanout(&mut self) -> Result<&mut Fanout, MediaError> {
        if self.fanout.is_none() {
            let f = match Fanout::with_audio(&self.launch, self.audio.as_deref()) {
                Ok(f) => f,
                Err(e) if self.audio.is_some() => {
                    // The sound is worth less than the picture.
                    log::warn!("no sound from now on: the audio encode cannot be built: {e}");
                    self.audio = None;
                    Fanout::new(&self.launch)?
                }
                Err(e) => return Err(e),
            };
            super::bus::watch(
                f.pipeline(),
                self.frames.clone(),
                self.bus_errors.clone(),
                f.switch(),
                f.audio_element_names(),
            );
            self.rate = Some(super::rate::Rates::new(&f));
            self.fanout = Some(f);
        }
        // Just set above when missing.
        Ok(self.fanout.as_mut().expect("fanout"))
    }

    /// Builds a peer's branch (an answerer's from the remote offer: its text, video section,
    /// payload type and codec; an offerer's for every codec it offers) and attaches it to the
    /// capture, starting the capture if it is the first.
    fn build(
        &mut self,
        key: &PeerKey,
        offer: Option<(&str, u32, u8, Codec)>,
    ) -> Result<(), MediaError> {
        let (role, codecs) = match offer {
            Some((.., codec)) => (Role::Answerer, vec![codec]),
            None => (Role::Offerer, self.codecs.clone()),
        };
        let mut peer = Peer::new(
            key.clone(),
            role,
            &codecs,
            &self.ice,
            self.dtls_pem.as_deref(),
            self.events.clone(),
        )?;
        if let Some((sdp, mline, pt, _)) = offer {
            peer.prepare_answer(sdp, mline, pt)?;
        }
        // Offerers (broadcast viewers) may talk, when the device has a speaker.
        let talk_input = offer.is_none().then(|| self.talk.input()).flatten();
        let fanout = self.fanout()?;
        if fanout.has_audio() {
            match offer {
                None => peer.add_audio(crate::payload::OFFER_OPUS_PT, None)?,
                Some((sdp, ..)) => {
                    if let Some((mline, pt)) = crate::audio::offered_opus(sdp) {
                        peer.add_audio(pt, Some(mline))?;
                    }
                }
            }
        }
        if let Some(input) = talk_input {
            peer.hear_into(input);
        }
        let starting = !fanout.is_playing();
        fanout.add(peer.bin())?;
        if starting {
            self.open_source();
        }
        let linked = match self.fanout.as_mut() {
            Some(fanout) => fanout.link(peer.bin(), peer.fed),
            None => Err(MediaError::Pipeline("capture stopped".into())),
        };
        match linked {
            Ok(pad) => {
                peer.tee_pad = Some(pad);
                if let Some(fanout) = self.fanout.as_mut() {
                    match fanout.link_audio(peer.bin()) {
                        Ok(audio) => peer.audio_pad = audio,
                        // The sound is worth less than the picture.
                        Err(e) => log::warn!(peer = key.1.as_str(); "no sound for this peer: {e}"),
                    }
                }
                self.peers.insert(key.clone(), peer);
                Ok(())
            }
            Err(e) => {
                self.retire(peer);
                Err(e)
            }
        }
    }

    /// Feeds a peer from `codec`'s encode (its answer chose it) if it is fed another.
    fn refeed(&mut self, key: &PeerKey, codec: Codec) -> Result<Option<&Peer>, MediaError> {
        let Some(fanout) = self.fanout.as_mut() else {
            return Ok(self.peers.get(key));
        };
        let Some(peer) = self.peers.get_mut(key) else {
            return Ok(None);
        };
        if peer.fed != codec {
            if let Some(pad) = peer.tee_pad.take() {
                fanout.unlink(&pad);
            }
            peer.switch_to(codec)?;
            peer.tee_pad = Some(fanout.link(peer.bin(), codec)?);
        }
        Ok(Some(peer))
    }

    /// The capture has just started: its source (behind a switch) is opened, and its health
    /// followed from now on. A capture without a switch started its source with it.
    fn open_source(&mut self) {
        if let Some(switch) = self.fanout.as_ref().and_then(|f| f.switch()) {
            self.health = Some(SourceWatch::start(switch, Instant::now()));
        }
    }

    fn remove_peer(&mut self, key: &PeerKey) {
        if let Some(rate) = self.rate.as_mut() {
            rate.remove(key);
        }
        self.talk.gone(key);
        if let Some(peer) = self.peers.remove(key) {
            self.retire(peer);
        }
    }

    /// Takes a departed peer's branch out of the pipeline at once (stopping the capture if
    /// it was the last) and holds it until its webrtcbin has settled; it is stopped then
    /// (see [`crate::retiring`]).
    fn retire(&mut self, peer: Peer) {
        if let Some(fanout) = self.fanout.as_mut() {
            fanout.detach(peer.bin(), peer.tee_pad.as_ref(), peer.audio_pad.as_ref());
            if !fanout.in_use() {
                // Nobody watches: stop the camera and the encoder.
                self.stop_capture();
            }
        }
        let number = self.retiring.hold(Instant::now(), peer);
        if let Some(peer) = self.retiring.get(number) {
            peer.settle(number);
        }
    }

    /// Lets go of the peers that have said nothing for [`SILENCE_LIMIT`] since their
    /// connection came up: their member is told why.
    fn drop_silent(&mut self) {
        let now = Instant::now();
        let silent: Vec<(PeerKey, Duration)> = self
            .peers
            .iter()
            .filter_map(|(key, peer)| Some((key.clone(), peer.silent_for(now)?)))
            .filter(|(_, quiet)| *quiet >= SILENCE_LIMIT)
            .collect();
        for (key, quiet) in silent {
            log::info!(peer = key.1.as_str(); "nothing heard for {quiet:?}; letting the peer go");
            let why = format!(
                "the camera has heard nothing from you for {} s, so it stopped sending",
                quiet.as_secs()
            );
            self.handle(&key, Event::Fault(why));
        }
    }

    /// Stops the departed peers whose webrtcbin did not settle in time.
    fn reap_overdue(&mut self) {
        for (peer, held) in self.retiring.overdue(Instant::now()) {
            log::warn!("a departed peer did not settle in {held:?}; stopping it anyway");
            self.reap(peer);
        }
    }

    /// Stops a departed peer off the loop; the memory it leaves is given back later.
    fn reap(&mut self, peer: Peer) {
        super::reap::reap(peer);
        self.trim.released(1, Instant::now());
    }
}

/// webrtcbin's connection state as the negotiation knows it.
fn connection(state: gst_webrtc::WebRTCPeerConnectionState) -> Connection {
    use gst_webrtc::WebRTCPeerConnectionState as S;
    match state {
        S::New => Connection::New,
        S::Connecting => Connection::Connecting,
        S::Connected => Connection::Connected,
        S::Disconnected => Connection::Disconnected,
        S::Failed => Connection::Failed,
        S::Closed => Connection::Closed,
        _ => Connection::Other,
    }
}
