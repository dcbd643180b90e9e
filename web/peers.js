// One RTCPeerConnection per remote member: made when the server asks this page to offer or
// sends it an offer; the offer or answer, the remote answer and ICE candidates applied in
// order per peer; closed when the member leaves. In watch mode one connection is made ahead of
// the camera's offer. Also each peer's video and sound reception (`stats()`), for tests.
//
// Owns the peers and their connections. Must not decide what a failure means for the
// conversation (it reports it through `onFailed` and `onLost`), build DOM (view.js makes each
// peer's tile), or open the camera (media.js; its stream is read through `localStream()`).
'use strict';

import { mark, watchFirstFrame } from '/timing.js';

/** Settings of every RTCPeerConnection: on a LAN no STUN or TURN is needed. */
const PC_CONFIG = { iceServers: [] };

/**
 * The peers of a page in `mode`. `send(signal, fields)` sends to the server; `label(id)` is
 * what a member is called on its tile. Reported: `onFailed(id, err)` a negotiation step or the
 * connection failed, `onLost(id)` the connection failed for good, `onChange()` a peer started
 * playing or its connection changed state otherwise.
 */
export function createPeers({ mode, view, send, localStream, label, onFailed, onLost, onChange }) {
  /** Remote members by id: {id, pc, queue, figure, video, stream, playing}. */
  const peers = new Map();
  /** Watch mode: the connection for the camera's next offer, made ahead of it. A page's
   *  first RTCPeerConnection sets up the browser's WebRTC machinery and certificate, tens of
   *  milliseconds that would otherwise sit between the offer and the answer. */
  let spare = null;

  function prepare() {
    if (mode === 'watch' && !spare && typeof RTCPeerConnection === 'function') {
      spare = new RTCPeerConnection(PC_CONFIG);
    }
  }

  function takeConnection() {
    const pc = spare || new RTCPeerConnection(PC_CONFIG);
    spare = null;
    return pc;
  }

  function newPeer(id) {
    close(id);
    const pc = takeConnection();
    mark('pc');
    const p = { id, pc, queue: Promise.resolve(), figure: null, video: null, stream: null, playing: false };
    const { figure, video } = view.makeTile(label(id), {
      onPlaying: () => {
        p.playing = true;
        onChange();
      },
    });
    p.figure = figure;
    p.video = video;
    pc.onicecandidate = (e) => {
      // A null candidate (or an empty one) only marks the end of gathering.
      if (e.candidate && e.candidate.candidate) {
        send('candidate', { to: id, content: JSON.stringify(e.candidate) });
      }
    };
    pc.ontrack = (e) => {
      // The status says when the camera sends no sound.
      if (e.track.kind === 'audio') p.hasAudio = true;
      let stream = e.streams[0];
      if (!stream) {
        // A sender that gave no stream id: collect its tracks in one stream of our own.
        p.stream = p.stream || new MediaStream();
        p.stream.addTrack(e.track);
        stream = p.stream;
      }
      mark('track');
      if (view.showStream(video, stream)) watchFirstFrame(video);
    };
    pc.oniceconnectionstatechange = () => {
      if (pc.iceConnectionState === 'connected') mark('ice');
    };
    pc.onconnectionstatechange = () => {
      const s = pc.connectionState;
      if (s === 'connected') mark('connected');
      if (s === 'failed' || s === 'closed') p.playing = false;
      if (s === 'failed') {
        fail(p, new Error('no network path for the video was found'));
        onLost(id);
        return;
      }
      onChange();
    };
    peers.set(id, p);
    return p;
  }

  /** Runs negotiation steps of one peer in order: messages arrive faster than they apply. */
  function step(p, fn) {
    p.queue = p.queue.then(fn).catch((err) => fail(p, err));
  }

  function fail(p, err) {
    if (peers.get(p.id) !== p) return;
    onFailed(p.id, err);
  }

  function addLocalTracks(pc) {
    const stream = localStream();
    for (const track of stream.getTracks()) pc.addTrack(track, stream);
  }

  /** The server asks us to offer to `id`. */
  function offer(id) {
    if (!id) return;
    const p = newPeer(id);
    const { pc } = p;
    step(p, async () => {
      if (localStream()) {
        addLocalTracks(pc);
      } else {
        pc.addTransceiver('video', { direction: 'recvonly' });
        pc.addTransceiver('audio', { direction: 'recvonly' });
      }
      await pc.setLocalDescription(await pc.createOffer());
      send('offerResponse', { to: id, content: pc.localDescription.sdp });
    });
  }

  /** `id` offers `sdp`; we answer. */
  function answer(id, sdp) {
    if (!id) return;
    const p = newPeer(id);
    const { pc } = p;
    step(p, async () => {
      await pc.setRemoteDescription({ type: 'offer', sdp });
      mark('remote');
      // Tracks added after the offer is applied take over its m-lines; added before, they
      // would sit on transceivers of their own that the answer does not include.
      if (localStream()) addLocalTracks(pc);
      else if (mode === 'watch') p.talkSender = acceptTalk(pc, sdp);
      await pc.setLocalDescription(await pc.createAnswer());
      send('answerResponse', { to: id, content: pc.localDescription.sdp });
      mark('answer');
    });
  }

  /**
   * Watch mode: when the camera's offer receives sound (it has a speaker for talkback), the
   * answer says this browser may send it, with no track yet: push to talk puts the
   * microphone on the sender (talk.js) without a new negotiation. Returns that sender.
   */
  function acceptTalk(pc, sdp) {
    const audio = sdp.split(/\r?\nm=/).find((m) => m.startsWith('audio '));
    if (!audio) return null;
    const sends = /\na=sendrecv\r?$/m.test(audio);
    const receivesOnly = /\na=recvonly\r?$/m.test(audio);
    if (!sends && !receivesOnly) return null;
    const t = pc.getTransceivers().find((x) => x.receiver.track.kind === 'audio');
    if (!t) return null;
    t.direction = receivesOnly ? 'sendonly' : 'sendrecv';
    return t.sender;
  }

  /** `id` answered our offer with `sdp`. */
  function answered(id, sdp) {
    const p = peers.get(id);
    if (!p) return;
    step(p, () => p.pc.setRemoteDescription({ type: 'answer', sdp }));
  }

  /** `id` sent an ICE candidate, `content` as JSON. */
  function candidate(id, content) {
    const p = peers.get(id);
    if (!p) return;
    let c;
    try {
      c = JSON.parse(content);
    } catch {
      return;
    }
    if (!c || typeof c.candidate !== 'string' || !c.candidate) return;
    // With everything bundled on one transport, the first m-line is the right default for a
    // sender that names neither.
    if (c.sdpMid == null && c.sdpMLineIndex == null) c.sdpMLineIndex = 0;
    step(p, () =>
      p.pc.addIceCandidate(c).catch((err) => console.warn(`peer ${id}: candidate refused: ${err.message}`)),
    );
  }

  function close(id) {
    const p = peers.get(id);
    if (!p) return;
    peers.delete(id);
    p.pc.close();
    view.removeTile(p);
  }

  function closeAll() {
    for (const id of [...peers.keys()]) close(id);
  }

  async function peerStats(p) {
    const s = {
      id: p.id,
      connectionState: p.pc.connectionState,
      framesDecoded: 0,
      frameWidth: 0,
      frameHeight: 0,
      videoWidth: p.video.videoWidth,
      hasAudio: Boolean(p.hasAudio),
      muted: p.video.muted,
      totalSamplesReceived: 0,
      audioLevel: 0,
    };
    try {
      (await p.pc.getStats()).forEach((r) => {
        if (r.type === 'inbound-rtp' && r.kind === 'video') {
          s.framesDecoded += r.framesDecoded || 0;
          s.frameWidth = Math.max(s.frameWidth, r.frameWidth || 0);
          s.frameHeight = Math.max(s.frameHeight, r.frameHeight || 0);
        }
        if (r.type === 'inbound-rtp' && r.kind === 'audio') {
          s.totalSamplesReceived += r.totalSamplesReceived || 0;
          s.audioLevel = Math.max(s.audioLevel, r.audioLevel || 0);
        }
      });
    } catch {
      // Closed while we asked: it reports zeros.
    }
    return s;
  }

  /**
   * Video reception per remote peer, and the least of each figure across peers at the top
   * level, so `framesDecoded >= n` means "every peer's video has decoded n frames".
   */
  async function stats() {
    const list = await Promise.all([...peers.values()].map(peerStats));
    const least = (key) => (list.length ? Math.min(...list.map((s) => s[key])) : 0);
    return {
      framesDecoded: least('framesDecoded'),
      frameWidth: least('frameWidth'),
      frameHeight: least('frameHeight'),
      videoWidth: least('videoWidth'),
      peers: list,
    };
  }

  return {
    prepare,
    offer,
    answer,
    answered,
    candidate,
    close,
    closeAll,
    stats,
    /** The peers, {id, pc, figure, video, …} each. */
    list: () => [...peers.values()],
    ids: () => [...peers.keys()],
    /** The narrowest remote video's width (0 while any has no frame yet, or none exists). */
    videoWidth: () => {
      const widths = [...peers.values()].map((p) => p.video.videoWidth);
      return widths.length ? Math.min(...widths) : 0;
    },
  };
}
