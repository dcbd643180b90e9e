//! The media worker's peers as negotiations: for each peer (the device offering to a viewer,
//! or answering a remote offer) when it was made, whether its offer was asked for and with
//! which stated profile, the description held back while local candidates gather, and
//! whether it connected in time.
//!
//! Pure: it is fed what the worker's loop sees ([`Event`]s, with the time passed in) and
//! returns what the loop must do to GStreamer and the device ([`Action`]s). It owns no
//! GStreamer object, socket or clock; the objects an action needs (caps `C`, a local
//! description `D`) are carried through from the event that brought them, untouched. The
//! worker's glue (`worker/run.rs`) keeps the GStreamer peers, keyed like the entries here, and
//! must not decide anything this file decides. Its vocabulary is in `messages.rs`.
//!
//! Whatever a remote member sends is checked here before GStreamer sees it (its offer or
//! answer by `peercam-sdp`, its candidates counted), and a peer the camera cannot use, or
//! that does not connect, is released and its member told why with `NEGOTIATION_FAILED`:
//! never silence. Only the failing peer is touched.
//!
//! An offer states the stream's H.264 profile. With the capture running it is read from the
//! encoder's caps. With the capture stopped, the offer is made at once, stating the profile
//! the stream had last (this worker's, or one before it, as the device tells); webrtcbin is
//! then left to accept whatever profile the encoder produces, so that a stated profile the
//! stream no longer has costs a log line, not the capture. Only a worker that never saw the
//! stream, with none to tell it, waits for the first frame's caps.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use peercam_signaling::Incoming;

use peercam_sdp::{check_answer, check_offer, parse, set_fingerprint, Codec};

use crate::ice::{self, Remote};
use crate::payload::complete_offer;
use crate::peer::{state_profile, PeerKey, Role};

mod messages;
#[cfg(test)]
mod tests;

pub use messages::{Action, Connection, Event, OfferCaps, SdpKind};

/// The longest an offer or answer waits for local candidates to travel in it. Host
/// candidates take a few milliseconds; a STUN server that is slow to answer must not hold
/// the viewer up, and its candidates trickle after the description.
pub const GATHER_WAIT: Duration = Duration::from_millis(100);

/// What the camera sends unless told otherwise ([`Negotiation::with_codecs`]): the one
/// shared H.264 encode.
const CODECS: &[Codec] = &[Codec::H264];

/// Remote candidates taken per peer: a browser sends a handful per network interface; past
/// this they are dropped, so a client cannot make the camera check thousands of pairs.
pub const MAX_REMOTE_CANDIDATES: usize = 64;

/// `.local` candidates resolved per peer (each holds a multicast DNS query for up to 3 s).
pub const MAX_RESOLVED: usize = 8;

/// One peer's negotiation.
#[derive(Debug)]
struct Entry {
    /// Offerer or answerer.
    role: Role,
    /// When its branch was built.
    created: Instant,
    /// The connection has been up.
    connected: bool,
    /// Offerer: whether the offer has been asked for.
    offered: bool,
    /// Offerer: the `profile-level-id` the offer states, when it was made before the
    /// stream's caps reached the branch.
    stated_profile: Option<String>,
    /// Offerer: our offer's text as sent, which the answer is read against.
    offer: Option<String>,
    /// Our offer or answer, applied but held back until the host candidates are gathered
    /// (a few milliseconds), so that they travel in it.
    unsent: Option<(SdpKind, String)>,
    /// Local candidates gathered while the description is held back.
    gathered: Vec<(u32, String)>,
    /// Remote candidates taken so far.
    remote_candidates: usize,
    /// `.local` candidates sent for resolution so far.
    resolving: usize,
}

impl Entry {
    fn new(role: Role, now: Instant) -> Entry {
        Entry {
            role,
            created: now,
            connected: false,
            offered: false,
            stated_profile: None,
            offer: None,
            unsent: None,
            gathered: Vec::new(),
            remote_candidates: 0,
            resolving: 0,
        }
    }
}

/// Every peer's negotiation, and what they share. `C` and `D` are what the glue's caps and
/// local descriptions are; they only pass through.
#[derive(Debug)]
pub struct Negotiation<C, D> {
    /// The peers, by (device member, remote member).
    peers: HashMap<PeerKey, Entry>,
    /// A peer not connected within this time is released.
    timeout: Duration,
    /// The stream's H.264 `profile-level-id`, as last seen (by this worker or, as the device
    /// told, one before it).
    stream_profile: Option<String>,
    /// The SHA-256 fingerprint of the DTLS certificate the peers present, when the device
    /// gave one: every offer and answer states it (webrtcbin 1.22 writes one computed from
    /// the certificate and key together).
    fingerprint: Option<String>,
    /// The codecs the camera can send, in its order of preference.
    codecs: Vec<Codec>,
    /// The types carried through events into actions.
    carried: PhantomData<(C, D)>,
}

impl<C, D> Negotiation<C, D> {
    /// No peers yet; `stream_profile` is the one the device remembers, if any; `fingerprint`
    /// the SHA-256 one of the peers' DTLS certificate, if the device gave one.
    pub fn new(
        timeout: Duration,
        stream_profile: Option<String>,
        fingerprint: Option<String>,
    ) -> Negotiation<C, D> {
        Negotiation {
            peers: HashMap::new(),
            timeout,
            stream_profile,
            fingerprint,
            codecs: CODECS.to_vec(),
            carried: PhantomData,
        }
    }

    /// The codecs the camera can send, in its order of preference (H.264 first, VP8 where the
    /// capture can encode it): what an offer it answers may get, and what its own offers list.
    pub fn with_codecs(mut self, codecs: &[Codec]) -> Negotiation<C, D> {
        if !codecs.is_empty() {
            self.codecs = codecs.to_vec();
        }
        self
    }

    /// The codecs the camera can send, in its order of preference.
    pub fn codecs(&self) -> &[Codec] {
        &self.codecs
    }

    /// Peers.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether there are no peers.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }

    /// Peers whose connection has been up.
    pub fn connected(&self) -> usize {
        self.peers.values().filter(|e| e.connected).count()
    }

    /// Whether peer `key`'s connection has been up.
    pub fn is_connected(&self, key: &PeerKey) -> bool {
        self.peers.get(key).is_some_and(|e| e.connected)
    }

    /// The peers' keys.
    pub fn keys(&self) -> impl Iterator<Item = &PeerKey> {
        self.peers.keys()
    }

    /// The stream's profile as last seen.
    pub fn stream_profile(&self) -> Option<&str> {
        self.stream_profile.as_deref()
    }

    /// What to do about `event` for the peer `key`.
    pub fn handle(&mut self, now: Instant, key: &PeerKey, event: Event<C, D>) -> Vec<Action<C, D>> {
        let mut out = Vec::new();
        match event {
            Event::OfferRequest => {
                self.remove(key, &mut out);
                out.push(Action::BuildOfferer(key.clone()));
            }
            Event::AnswerRequest { sdp } => {
                self.remove(key, &mut out);
                match check_offer(&sdp, &self.codecs) {
                    Ok((_, choice)) => out.push(Action::BuildAnswerer {
                        key: key.clone(),
                        sdp,
                        mline: choice.mline,
                        pt: choice.pt,
                        codec: choice.codec,
                    }),
                    Err(why) => self.refuse(key, why.to_string(), &mut out),
                }
            }
            Event::BuildFailed(why) => {
                self.refuse(
                    key,
                    format!("the camera could not start a stream for you: {why}"),
                    &mut out,
                );
            }
            Event::OffererBuilt { stream_caps } => {
                let mut entry = Entry::new(Role::Offerer, now);
                // A running stream's caps are known now: offer without waiting for the next
                // frame to reach the new branch. Otherwise the branch's first caps bring the
                // offer.
                if let Some(caps) = stream_caps {
                    out.push(Action::CreateOffer {
                        key: key.clone(),
                        caps: OfferCaps::Caps(caps),
                    });
                    entry.offered = true;
                } else if let Some(profile) = &self.stream_profile {
                    out.push(Action::CreateOffer {
                        key: key.clone(),
                        caps: OfferCaps::AnyProfile,
                    });
                    entry.offered = true;
                    entry.stated_profile = Some(profile.clone());
                }
                self.peers.insert(key.clone(), entry);
            }
            Event::AnswererBuilt => {
                self.peers
                    .insert(key.clone(), Entry::new(Role::Answerer, now));
            }
            Event::RemoteAnswer { sdp } => {
                if let Some(entry) = self.peers.get(key) {
                    log::debug!(peer = key.1.as_str(); "answer after {:?}", now.saturating_duration_since(entry.created));
                    // What the answer accepted is read against the offer it answers.
                    let offer = entry.offer.as_deref().map(parse);
                    let checked = match offer {
                        Some(Ok(offer)) => check_answer(&sdp, &offer, &self.codecs),
                        Some(Err(e)) => Err(peercam_sdp::Unusable(format!(
                            "the camera could not read its own offer: {e}"
                        ))),
                        None => Err(peercam_sdp::Unusable(
                            "the answer came before the camera's offer".into(),
                        )),
                    };
                    match checked {
                        Ok((_, choice)) => {
                            log::info!(peer = key.1.as_str(); "the viewer accepted {}", choice.codec.name());
                            out.push(Action::ApplyAnswer {
                                key: key.clone(),
                                sdp,
                                codec: choice.codec,
                            })
                        }
                        Err(why) => self.refuse(key, why.to_string(), &mut out),
                    }
                }
            }
            Event::RemoteCandidate { json } => {
                if let Some(entry) = self.peers.get_mut(key) {
                    remote_candidate(key, entry, &json, &mut out);
                }
            }
            Event::Fault(why) => {
                if self.peers.contains_key(key) {
                    self.refuse(key, why, &mut out);
                }
            }
            Event::Left => {
                self.remove(key, &mut out);
                self.release_if_alone(&key.0, &mut out);
            }
            event => self.on_peer(now, key, event, &mut out),
        }
        out
    }

    /// What to do now that the member `me` has ended or been refused: release it if it has
    /// no peer left.
    pub fn member_done(&self, me: &str) -> Vec<Action<C, D>> {
        let mut out = Vec::new();
        self.release_if_alone(me, &mut out);
        out
    }

    /// Releases every peer that has not connected within the time-out.
    pub fn tick(&mut self, now: Instant) -> Vec<Action<C, D>> {
        let timeout = self.timeout;
        let stale: Vec<PeerKey> = self
            .peers
            .iter()
            .filter(|(_, e)| !e.connected && now.saturating_duration_since(e.created) > timeout)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::new();
        for key in stale {
            let why = format!(
                "the connection did not come up within {} s: ICE or DTLS never completed (a \
                 firewall between you and the camera, or a client whose encryption the camera \
                 does not speak)",
                timeout.as_secs()
            );
            self.refuse(&key, why, &mut out);
        }
        out
    }

    /// Removes every peer (the capture failed, or the worker stops).
    pub fn clear(&mut self) -> Vec<Action<C, D>> {
        let keys: Vec<PeerKey> = self.peers.keys().cloned().collect();
        let mut out = Vec::new();
        for key in keys {
            self.remove(&key, &mut out);
        }
        out
    }

    /// Events reported by the peer's own GStreamer elements.
    fn on_peer(
        &mut self,
        now: Instant,
        key: &PeerKey,
        event: Event<C, D>,
        out: &mut Vec<Action<C, D>>,
    ) {
        let Some(entry) = self.peers.get_mut(key) else {
            return;
        };
        let peer = key.1.as_str();
        log::debug!(peer; "{} after {:?}", event_name(&event), now.saturating_duration_since(entry.created));
        match event {
            Event::CapsReady { caps, profile } => {
                if let Some(stated) = &entry.stated_profile {
                    if profile.as_ref().is_some_and(|p| p != stated) {
                        log::info!(peer;
                            "the stream's profile-level-id is {profile:?}; the offer stated {stated}");
                    }
                }
                match entry.role {
                    Role::Offerer if entry.offered => {}
                    Role::Offerer => {
                        out.push(Action::CreateOffer {
                            key: key.clone(),
                            caps: OfferCaps::Caps(caps),
                        });
                        entry.offered = true;
                    }
                    Role::Answerer => out.push(Action::ApplyOffer {
                        key: key.clone(),
                        caps,
                    }),
                }
                self.learn_profile(profile, out);
            }
            Event::RemoteOfferSet => out.push(Action::CreateAnswer(key.clone())),
            Event::LocalDescription {
                kind,
                sdp,
                description,
            } => {
                let sdp = match sdp {
                    Ok(sdp) => sdp,
                    Err(e) => {
                        log::warn!(peer; "SDP: {e}");
                        return;
                    }
                };
                let sdp = match &entry.stated_profile {
                    Some(p) if kind == SdpKind::Offer => state_profile(&sdp, p),
                    _ => sdp,
                };
                let sdp = match kind {
                    SdpKind::Offer => complete_offer(&sdp, &self.codecs),
                    SdpKind::Answer => sdp,
                };
                let sdp = match &self.fingerprint {
                    Some(fp) => set_fingerprint(&sdp, "sha-256", fp),
                    None => sdp,
                };
                // Applying it starts gathering; the description goes out when that is done
                // (host candidates take a few milliseconds) or after GATHER_WAIT at most.
                entry.unsent = Some((kind, sdp));
                out.push(Action::SetLocal {
                    key: key.clone(),
                    description,
                });
                out.push(Action::WakeAfter {
                    key: key.clone(),
                    after: GATHER_WAIT,
                });
            }
            Event::GatheringComplete | Event::GatheringWaitOver => {
                let Some((kind, sdp)) = entry.unsent.take() else {
                    return;
                };
                let sdp = ice::with_candidates(&sdp, &std::mem::take(&mut entry.gathered));
                if kind == SdpKind::Offer {
                    entry.offer = Some(sdp.clone());
                }
                let to = key.1.clone();
                let msg = match kind {
                    SdpKind::Offer => Incoming::OfferResponse { to, sdp },
                    SdpKind::Answer => Incoming::AnswerResponse { to, sdp },
                };
                out.push(Action::Send {
                    member: key.0.clone(),
                    msg,
                });
            }
            Event::LocalCandidate { mline, candidate } => {
                if entry.unsent.is_some() {
                    entry.gathered.push((mline, candidate));
                    return;
                }
                out.push(Action::Send {
                    member: key.0.clone(),
                    msg: Incoming::Candidate {
                        to: key.1.clone(),
                        candidate: ice::to_json(mline, &candidate),
                    },
                });
            }
            Event::State(state) => {
                log::debug!(peer; "connection {state:?}");
                match state {
                    Connection::Connected => {
                        entry.connected = true;
                        // The keyframe sent on attach went out before DTLS was up; and the
                        // peer's RTP session, made during negotiation, has no latency yet.
                        out.push(Action::Refresh);
                        log::info!(peer; "viewer connected");
                    }
                    Connection::Failed => {
                        let why = "the connection to the camera failed: ICE or DTLS could not \
                                   be completed";
                        self.refuse(key, why.into(), out);
                    }
                    Connection::Closed => {
                        log::info!(peer; "connection closed; releasing");
                        self.remove(key, out);
                    }
                    _ => {}
                }
            }
            Event::Failed(why) => {
                self.refuse(
                    key,
                    format!("the camera could not negotiate with you: {why}"),
                    out,
                );
            }
            // Handled in `handle`.
            Event::OfferRequest
            | Event::AnswerRequest { .. }
            | Event::OffererBuilt { .. }
            | Event::AnswererBuilt
            | Event::RemoteAnswer { .. }
            | Event::RemoteCandidate { .. }
            | Event::Fault(_)
            | Event::BuildFailed(_)
            | Event::Left => {}
        }
    }

    /// Remembers the stream's H.264 profile and tells the device, which hands it to later
    /// workers: their first offer then states it at once.
    fn learn_profile(&mut self, profile: Option<String>, out: &mut Vec<Action<C, D>>) {
        let Some(profile) = profile else { return };
        if self.stream_profile.as_ref() != Some(&profile) {
            self.stream_profile = Some(profile.clone());
            out.push(Action::TellProfile(profile));
        }
    }

    /// Releases the peer, if any, and tells its member why the camera gave up on it.
    fn refuse(&mut self, key: &PeerKey, why: String, out: &mut Vec<Action<C, D>>) {
        log::info!(peer = key.1.as_str(); "negotiation failed: {why}");
        self.remove(key, out);
        out.push(Action::Send {
            member: key.0.clone(),
            msg: Incoming::NegotiationFailed {
                to: key.1.clone(),
                reason: why,
            },
        });
    }

    fn remove(&mut self, key: &PeerKey, out: &mut Vec<Action<C, D>>) {
        if self.peers.remove(key).is_some() {
            out.push(Action::Remove(key.clone()));
        }
    }

    /// Tells the device that `me` has no peer left (a member it was invited as then leaves
    /// its room).
    fn release_if_alone(&self, me: &str, out: &mut Vec<Action<C, D>>) {
        if self.peers.keys().all(|k| k.0 != me) {
            out.push(Action::Release {
                member: me.to_owned(),
            });
        }
    }
}

/// What to do with a remote candidate's JSON: bounded per peer.
fn remote_candidate<C, D>(
    key: &PeerKey,
    entry: &mut Entry,
    json: &str,
    out: &mut Vec<Action<C, D>>,
) {
    if entry.remote_candidates >= MAX_REMOTE_CANDIDATES {
        if entry.remote_candidates == MAX_REMOTE_CANDIDATES {
            log::info!(peer = key.1.as_str(); "more than {MAX_REMOTE_CANDIDATES} candidates; the rest are dropped");
            entry.remote_candidates += 1;
        }
        return;
    }
    match ice::from_json(json) {
        Ok(Remote::Add { mline, candidate }) => {
            entry.remote_candidates += 1;
            out.push(Action::AddCandidate {
                key: key.clone(),
                mline,
                candidate,
            })
        }
        Ok(Remote::Mdns {
            mline,
            candidate,
            host,
        }) => {
            entry.remote_candidates += 1;
            if entry.resolving >= MAX_RESOLVED {
                log::info!(peer = key.1.as_str(); "more than {MAX_RESOLVED} .local candidates; {host} dropped");
                return;
            }
            entry.resolving += 1;
            out.push(Action::Resolve {
                key: key.clone(),
                mline,
                candidate,
                host,
            })
        }
        Ok(Remote::Skip) => {}
        Err(e) => log::info!(peer = key.1.as_str(); "{e}"),
    }
}

fn event_name<C, D>(ev: &Event<C, D>) -> &'static str {
    match ev {
        Event::CapsReady { .. } => "caps ready",
        Event::RemoteOfferSet => "remote offer applied",
        Event::LocalDescription { .. } => "local description",
        Event::LocalCandidate { .. } => "local candidate",
        Event::State(_) => "state change",
        Event::GatheringComplete => "gathering complete",
        Event::GatheringWaitOver => "gathering wait over",
        Event::Failed(_) => "failure",
        Event::OfferRequest => "offer request",
        Event::AnswerRequest { .. } => "answer request",
        Event::OffererBuilt { .. } | Event::AnswererBuilt => "built",
        Event::RemoteAnswer { .. } => "answer",
        Event::RemoteCandidate { .. } => "remote candidate",
        Event::Fault(_) => "fault",
        Event::BuildFailed(_) => "build failure",
        Event::Left => "left",
    }
}
