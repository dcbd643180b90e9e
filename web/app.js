// The page the device serves. Two modes, chosen by the URL:
//
//   /                  watch the camera: join its standing BROADCAST conversation; the camera
//                      offers, this page answers and plays the video (muted until asked).
//   /?room=NAME        video chat: join the MESH conversation NAME with this browser's camera
//                      and microphone; every other member appears in the grid.
//   /?room=NAME&invite=1, or the "Invite the camera" button: also ask the device to join the
//                      room as one more member (the `invite` extension of PROTOCOL.md).
//   ?stats=1           in either mode: the stats overlay on from the start (also the `s` key).
//
// Signaling is nextRTC over one WebSocket (see PROTOCOL.md). The negotiation code is the same
// in both modes: whoever the server tells to offer offers, whoever is offered to answers.
// Tests read `window.peercam` (state, stats) instead of scraping the DOM.
//
// Loaded as a module: overlay.js is the stats overlay, fullscreen.js the Fullscreen API.
'use strict';

import { createOverlay } from '/overlay.js';
import * as fullscreen from '/fullscreen.js';

(() => {
  performance.mark('peercam-start');
  const params = new URLSearchParams(location.search);
  const room = params.get('room') || '';
  const mode = room ? 'room' : 'watch';
  const autoInvite = params.has('invite') && params.get('invite') !== '0';

  // After "busy", "ended" or "no camera yet": how long to wait before asking again. Long
  // enough not to churn the server, short enough that a freed slot is noticed soon.
  const REJOIN_MS = 5000;
  // After the WebSocket drops (device restarting, Wi-Fi blip).
  const RECONNECT_MS = 3000;

  const el = {
    status: document.getElementById('status'),
    notice: document.getElementById('notice'),
    grid: document.getElementById('grid'),
    sound: document.getElementById('sound'),
    invite: document.getElementById('invite'),
    fullscreen: document.getElementById('fullscreen'),
    stats: document.getElementById('stats'),
    leave: document.getElementById('leave'),
    rejoin: document.getElementById('rejoin'),
    roomForm: document.getElementById('room-form'),
  };

  /** `/api/info`: {name, version, conversation, signaling, tls, fingerprint}. */
  let info = null;
  let ws = null;
  /** Our member id, learned from the `to` of what the server sends (nextRTC's `ping`). */
  let myId = '';
  /** The conversation we are in, '' when none. */
  let conversation = '';
  let state = 'connecting';
  /** Set by errors after which retrying cannot help (forbidden origin, unauthorized). */
  let fatal = false;
  /** The server refused the connection with SERVER_BUSY and is about to close it. */
  let refusedBusy = false;
  let retryTimer = 0;
  let invited = false;
  /** This browser's camera and microphone (room mode only). */
  let localStream = null;
  /** The tile that shows `localStream`. */
  let localTile = null;
  /** Why this browser sends no camera, when it sends none (nodes: it may hold a link). It
   *  stays in the notice, which shows it again when a passing message is cleared. */
  let mediaNotice = null;
  /** The user left (the Leave button): stay out, even across reconnects, until Rejoin. */
  let userLeft = false;
  // Watch mode starts muted so that autoplay is allowed everywhere; in a call people expect
  // to hear each other, and a page that captures media may autoplay with sound.
  let soundOn = mode === 'room';
  /** Remote members by id: {id, pc, queue, figure, video, stream, playing}. */
  const peers = new Map();
  /** Every `error` the server sent and every failed negotiation, oldest first. */
  const errors = [];
  /** Every state the page went through, for tests and troubleshooting. */
  const history = ['connecting'];
  /** Milliseconds since the page started loading: the last join sent, the first frame shown
   *  after it. What a user feels as "time to picture". */
  const timing = { join: null, firstFrame: null };
  /** The steps between them, same clock, for the last join: offer received, answer sent,
   *  ICE connected, DTLS connected, track, and the first frame decoded. */
  const steps = {};
  function mark(name) {
    if (timing.join != null && steps[name] == null) steps[name] = performance.now();
  }

  /** Settings of every RTCPeerConnection: on a LAN no STUN or TURN is needed. */
  const PC_CONFIG = { iceServers: [] };
  /** Watch mode: the connection for the camera's next offer, made ahead of it. A page's
   *  first RTCPeerConnection sets up the browser's WebRTC machinery and certificate, tens of
   *  milliseconds that would otherwise sit between the offer and the answer. */
  let spare = null;

  function prepareConnection() {
    if (mode === 'watch' && !spare && typeof RTCPeerConnection === 'function') {
      spare = new RTCPeerConnection(PC_CONFIG);
    }
  }

  function takeConnection() {
    const pc = spare || new RTCPeerConnection(PC_CONFIG);
    spare = null;
    return pc;
  }

  function setState(next, text) {
    if (next !== state) history.push(next);
    state = next;
    document.body.dataset.state = next;
    el.status.textContent = text;
    // Shown over the view in fullscreen, where the status line is out of sight (style.css).
    el.grid.dataset.status = text;
  }

  function showNotice(text) {
    if (text || !mediaNotice) el.notice.textContent = text;
    else el.notice.replaceChildren(...mediaNotice);
    el.notice.hidden = !text && !mediaNotice;
  }

  /** Sets the standing notice from strings and elements, or removes it (no arguments). */
  function setMediaNotice(...parts) {
    mediaNotice = parts.length
      ? parts.map((part) => (typeof part === 'string' ? document.createTextNode(part) : part))
      : null;
    showNotice('');
  }

  /** Why the camera is off on a page that is not a secure context; over plain http to a
   *  device that answers https too, a link to this room there and the fingerprint to check. */
  function insecureNotice() {
    const why = 'This browser allows the camera and microphone only on https:// or localhost ' +
      'pages; you can see the others but they cannot see you.';
    if (!info.tls || !info.fingerprint || location.protocol !== 'http:') return [why];
    const url = `https://${location.host}${location.pathname}${location.search}`;
    const link = document.createElement('a');
    link.href = url;
    link.textContent = url;
    const fingerprint = document.createElement('code');
    fingerprint.textContent = info.fingerprint;
    return [
      `${why} To be seen and heard, open this room over https: `,
      link,
      `. The browser will warn that it does not know ${info.name}'s own certificate and ask ` +
        'whether to accept it: accept it only if the SHA-256 fingerprint it shows is ',
      fingerprint,
      '.',
    ];
  }

  function send(signal, fields = {}) {
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    ws.send(JSON.stringify({ signal, to: '', content: '', custom: {}, ...fields }));
  }

  function target() {
    return mode === 'watch' ? info.conversation : room;
  }

  function join() {
    clearTimeout(retryTimer);
    invited = false;
    timing.join = performance.now();
    timing.firstFrame = null;
    for (const k of Object.keys(steps)) delete steps[k];
    send('join', { content: target() });
    // After the send, so the join is not held back; the offer cannot be read before this
    // returns.
    prepareConnection();
    mark('prepared');
  }

  function scheduleRejoin() {
    clearTimeout(retryTimer);
    retryTimer = setTimeout(() => {
      if (!conversation && !userLeft) join();
    }, REJOIN_MS);
  }

  function connect() {
    clearTimeout(retryTimer);
    setState('connecting', `Connecting to ${info.name}…`);
    // The first time, the connection index.html opened while the page loaded.
    const early = window.peercamEarly;
    window.peercamEarly = null;
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const socket = early ? early.ws : new WebSocket(`${scheme}//${location.host}${info.signaling}`);
    ws = socket;
    socket.onopen = () => {
      performance.mark('peercam-ws-open');
      if (!userLeft) join();
    };
    socket.onmessage = (e) => onMessage(e.data);
    socket.onclose = () => {
      if (ws !== socket) return;
      ws = null;
      conversation = '';
      closeAll();
      if (fatal) return;
      // After SERVER_BUSY the close is expected and "busy" stays the better explanation.
      if (!refusedBusy && !userLeft) {
        setState('disconnected', `Disconnected from ${info.name}; reconnecting…`);
      }
      refusedBusy = false;
      retryTimer = setTimeout(connect, RECONNECT_MS);
    };
    if (early) {
      // What arrived before this script ran, then the events already past.
      for (const text of early.messages) onMessage(text);
      if (socket.readyState === WebSocket.OPEN) socket.onopen();
      else if (socket.readyState === WebSocket.CLOSED) socket.onclose();
    }
  }

  function onMessage(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch {
      console.warn('signaling: ignoring a message that is not JSON');
      return;
    }
    if (!msg || typeof msg !== 'object') return;
    const from = typeof msg.from === 'string' ? msg.from : '';
    const content = typeof msg.content === 'string' ? msg.content : '';
    if (typeof msg.to === 'string' && msg.to) myId = msg.to;
    switch (String(msg.signal || '').toLowerCase()) {
      case 'created':
        onJoined(content, true);
        break;
      case 'joined':
        onJoined(content, false);
        break;
      case 'offerrequest':
        makeOffer(from);
        break;
      case 'answerrequest':
        mark('offer');
        makeAnswer(from, content);
        break;
      case 'finalize':
        onAnswer(from, content);
        break;
      case 'candidate':
        onCandidate(from, content);
        break;
      case 'left':
        closePeer(from);
        refresh();
        break;
      case 'end':
        onEnd();
        break;
      case 'error':
        onError(content, (msg.custom && msg.custom.message) || content);
        break;
      default:
        // ping (its `to` was read above), newJoined, text, and signals added later.
        break;
    }
  }

  function onJoined(conv, created) {
    conversation = conv;
    if (mode === 'watch' && created) {
      // The join created the conversation, so the camera is not serving it. Leave at once
      // rather than sit on the id the camera will want when it starts, and ask again later.
      send('left');
      conversation = '';
      setState('waiting', `${info.name} is not streaming right now; waiting for it…`);
      scheduleRejoin();
      return;
    }
    if (mode === 'room' && autoInvite && !invited) invite();
    refresh();
  }

  function onEnd() {
    closeAll();
    conversation = '';
    setState('ended', `${info.name} stopped streaming; waiting for it to come back…`);
    scheduleRejoin();
  }

  function onError(code, message) {
    errors.push({ code, message });
    console.warn(`signaling error ${code}: ${message}`);
    switch (code) {
      case 'VIEWER_LIMIT':
        setState('busy', viewerLimitText(message));
        scheduleRejoin();
        break;
      case 'CONVERSATION_NOT_FOUND':
        if (mode === 'watch') {
          setState('waiting', `${info.name} is not streaming right now; waiting for it…`);
          scheduleRejoin();
        } else {
          showNotice(message);
        }
        break;
      case 'FORBIDDEN_ORIGIN':
      case 'UNAUTHORIZED':
        fatal = true;
        setState('error', message);
        break;
      case 'SERVER_BUSY':
        // The server closes the socket after this; the reconnect timer takes it from there.
        refusedBusy = true;
        setState('busy', `${info.name} is busy: ${message}. Trying again shortly…`);
        break;
      default:
        showNotice(`${code}: ${message}`);
        break;
    }
  }

  /** VIEWER_LIMIT in words; the server's sentence names the limit ("… limit of 4 viewers"). */
  function viewerLimitText(message) {
    const n = Number((/limit of (\d+)/.exec(message) || [])[1]);
    const most = n
      ? `its maximum of ${n} viewer${n === 1 ? '' : 's'}`
      : 'as many viewers as it allows';
    return `${info.name} already has ${most}; trying again shortly…`;
  }

  /** Derives the status line from the peers once we are in a conversation. */
  function refresh() {
    if (!conversation) return;
    const all = [...peers.values()];
    if (mode === 'watch') {
      if (all.some((p) => p.playing)) setState('live', 'Live');
      else setState('waiting', `Waiting for ${info.name}'s video…`);
      return;
    }
    // In a call, someone connected without a camera still counts as being there.
    const present = all.filter((p) => p.playing || p.pc.connectionState === 'connected').length;
    if (present) {
      const others = present === 1 ? '1 other' : `${present} others`;
      setState('live', `Live in room “${room}” with ${others}`);
    } else {
      setState('waiting', `In room “${room}”; waiting for others to join…`);
    }
  }

  function invite() {
    invited = true;
    showNotice('');
    send('invite', { content: room });
  }

  // ---- peers -------------------------------------------------------------------------

  function label(id) {
    if (info && id === info.conversation) return info.name;
    // Invited into a call, the device is member `<conversation>-<n>`.
    const n = info ? id.slice(info.conversation.length + 1) : '';
    if (info && id === `${info.conversation}-${n}` && /^\d+$/.test(n)) return info.name;
    return id;
  }

  function makeTile(caption, local) {
    const figure = document.createElement('figure');
    if (local) figure.className = 'local';
    const video = document.createElement('video');
    video.autoplay = true;
    video.playsInline = true;
    video.muted = local || !soundOn;
    // Watching, the whole view goes fullscreen (it survives the video being replaced on a
    // reconnect); in a call, the person double-clicked.
    video.addEventListener('dblclick', () => {
      fullscreen.toggle(mode === 'watch' ? el.grid : figure);
    });
    figure.append(video);
    if (mode === 'room') {
      const text = document.createElement('figcaption');
      text.textContent = caption;
      figure.append(text);
    }
    el.grid.append(figure);
    return { figure, video };
  }

  function play(video) {
    video.play().catch((err) => {
      if (err.name === 'NotAllowedError' && !video.muted) {
        // Sound needs a click first in this browser; play muted until the button is pressed.
        setSound(false);
        video.play().catch(() => {});
      }
      // AbortError: a newer srcObject replaced this one; its own play() follows.
    });
  }

  function setSound(on) {
    soundOn = on;
    el.sound.textContent = on ? 'Mute' : 'Sound on';
    el.sound.setAttribute('aria-pressed', String(on));
    for (const p of peers.values()) p.video.muted = !on;
  }

  function newPeer(id) {
    closePeer(id);
    const pc = takeConnection();
    mark('pc');
    const { figure, video } = makeTile(label(id), false);
    const p = { id, pc, queue: Promise.resolve(), figure, video, stream: null, playing: false };
    pc.onicecandidate = (e) => {
      // A null candidate (or an empty one) only marks the end of gathering.
      if (e.candidate && e.candidate.candidate) {
        send('candidate', { to: id, content: JSON.stringify(e.candidate) });
      }
    };
    pc.ontrack = (e) => {
      let stream = e.streams[0];
      if (!stream) {
        // A sender that gave no stream id: collect its tracks in one stream of our own.
        p.stream = p.stream || new MediaStream();
        p.stream.addTrack(e.track);
        stream = p.stream;
      }
      mark('track');
      if (video.srcObject !== stream) {
        video.srcObject = stream;
        play(video);
        if (video.requestVideoFrameCallback) {
          video.requestVideoFrameCallback((now, meta) => {
            timing.firstFrame ??= performance.now();
            // When the frame's last packet arrived plus its decoding time.
            if (steps.decoded == null && meta && meta.receiveTime && timing.join != null) {
              steps.decoded = meta.receiveTime + (meta.processingDuration || 0) * 1000;
            }
          });
        }
      }
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
        if (mode === 'watch') {
          // Negotiating afresh is the only way back; the server starts it on a new join.
          send('left');
          conversation = '';
          closeAll();
          setState('waiting', `Lost the video from ${info.name}; trying again shortly…`);
          scheduleRejoin();
          return;
        }
      }
      refresh();
    };
    video.addEventListener('playing', () => {
      p.playing = true;
      refresh();
    });
    peers.set(id, p);
    el.sound.hidden = false;
    return p;
  }

  /** Runs negotiation steps of one peer in order: messages arrive faster than they apply. */
  function step(p, fn) {
    p.queue = p.queue.then(fn).catch((err) => fail(p, err));
  }

  function fail(p, err) {
    if (peers.get(p.id) !== p) return;
    errors.push({ code: 'WEBRTC', message: `${p.id}: ${err.message}` });
    console.warn(`peer ${p.id}: ${err.message}`);
    showNotice(`Connection with ${label(p.id)} failed: ${err.message}`);
  }

  function addLocalTracks(pc) {
    for (const track of localStream.getTracks()) pc.addTrack(track, localStream);
  }

  function makeOffer(id) {
    if (!id) return;
    const p = newPeer(id);
    const { pc } = p;
    step(p, async () => {
      if (localStream) {
        addLocalTracks(pc);
      } else {
        pc.addTransceiver('video', { direction: 'recvonly' });
        pc.addTransceiver('audio', { direction: 'recvonly' });
      }
      await pc.setLocalDescription(await pc.createOffer());
      send('offerResponse', { to: id, content: pc.localDescription.sdp });
    });
  }

  function makeAnswer(id, sdp) {
    if (!id) return;
    const p = newPeer(id);
    const { pc } = p;
    step(p, async () => {
      await pc.setRemoteDescription({ type: 'offer', sdp });
      mark('remote');
      // Tracks added after the offer is applied take over its m-lines; added before, they
      // would sit on transceivers of their own that the answer does not include.
      if (localStream) addLocalTracks(pc);
      await pc.setLocalDescription(await pc.createAnswer());
      send('answerResponse', { to: id, content: pc.localDescription.sdp });
      mark('answer');
    });
  }

  function onAnswer(id, sdp) {
    const p = peers.get(id);
    if (!p) return;
    step(p, () => p.pc.setRemoteDescription({ type: 'answer', sdp }));
  }

  function onCandidate(id, content) {
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

  function closePeer(id) {
    const p = peers.get(id);
    if (!p) return;
    peers.delete(id);
    p.pc.close();
    p.video.srcObject = null;
    p.figure.remove();
    el.sound.hidden = peers.size === 0;
  }

  function closeAll() {
    for (const id of [...peers.keys()]) closePeer(id);
  }

  // ---- leaving and coming back ---------------------------------------------------------

  function leave() {
    userLeft = true;
    clearTimeout(retryTimer);
    send('left');
    conversation = '';
    closeAll();
    if (mode === 'room') {
      // Leaving a call turns this browser's camera and microphone off.
      stopMedia();
      const hadFocus = document.activeElement === el.leave;
      el.leave.hidden = true;
      el.invite.hidden = true;
      el.rejoin.hidden = false;
      if (hadFocus) el.rejoin.focus();
      setState('left', `You left room “${room}”.`);
    } else {
      setState('left', 'You left.');
    }
  }

  async function rejoin() {
    if (!userLeft) return;
    userLeft = false;
    showNotice('');
    if (mode === 'room') {
      const hadFocus = document.activeElement === el.rejoin;
      el.rejoin.hidden = true;
      el.leave.hidden = false;
      el.invite.hidden = false;
      if (hadFocus) el.leave.focus();
      await startMedia();
    }
    if (ws && ws.readyState === WebSocket.OPEN) join();
    else if (!ws) connect();
    // A socket still opening joins when it opens.
  }

  // ---- controls ----------------------------------------------------------------------------

  const overlay = createOverlay({ peers: () => [...peers.values()], button: el.stats });

  function toggleFullscreen() {
    fullscreen.toggle(el.grid);
  }

  /** `s`: the stats; `f`: fullscreen. Not while typing, nor with modifiers (browser keys). */
  function onKey(e) {
    if (e.ctrlKey || e.metaKey || e.altKey || e.repeat || e.defaultPrevented) return;
    const t = e.target;
    if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
    const key = String(e.key || '').toLowerCase();
    if (key === 's') overlay.toggle();
    else if (key === 'f' && fullscreen.available) toggleFullscreen();
  }

  // ---- test hooks ------------------------------------------------------------------------

  async function peerStats(p) {
    const s = {
      id: p.id,
      connectionState: p.pc.connectionState,
      framesDecoded: 0,
      frameWidth: 0,
      frameHeight: 0,
      videoWidth: p.video.videoWidth,
    };
    try {
      (await p.pc.getStats()).forEach((r) => {
        if (r.type === 'inbound-rtp' && r.kind === 'video') {
          s.framesDecoded += r.framesDecoded || 0;
          s.frameWidth = Math.max(s.frameWidth, r.frameWidth || 0);
          s.frameHeight = Math.max(s.frameHeight, r.frameHeight || 0);
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

  window.peercam = {
    get mode() { return mode; },
    get state() { return state; },
    get status() { return el.status.textContent; },
    get notice() { return el.notice.hidden ? '' : el.notice.textContent; },
    get id() { return myId; },
    get conversation() { return conversation; },
    get errors() { return errors.slice(); },
    get history() { return history.slice(); },
    get timing() { return { ...timing, steps: { ...steps } }; },
    peers: () => [...peers.keys()],
    /** The narrowest remote video's width (0 while any has no frame yet, or none exists). */
    videoWidth: () => {
      const widths = [...peers.values()].map((p) => p.video.videoWidth);
      return widths.length ? Math.min(...widths) : 0;
    },
    stats,
    /** The stats overlay's figures: {shown, updated, peers: [{id, width, height, fps,
     *  bitrate (bit/s), rtt (ms), jitterBufferDelay (ms), codec, packetsLost}]}. */
    overlay: () => overlay.figures(),
    showStats: (on) => overlay.show(on),
    get fullscreen() { return fullscreen.current() !== null; },
    invite,
    leave,
    rejoin,
    join,
  };

  // ---- start -------------------------------------------------------------------------------

  async function startMedia() {
    setMediaNotice();
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      setMediaNotice(...insecureNotice());
      return;
    }
    setState('connecting', 'Starting your camera…');
    const want = [{ video: true, audio: true }, { video: true }, { audio: true }];
    for (const constraints of want) {
      try {
        localStream = await navigator.mediaDevices.getUserMedia(constraints);
        break;
      } catch {
        // Try with less: a laptop without a microphone can still send video.
      }
    }
    if (!localStream) {
      setMediaNotice('No camera or microphone could be opened; you can see the others but ' +
        'they cannot see you.');
      return;
    }
    localTile = makeTile('You', true);
    localTile.video.srcObject = localStream;
    localTile.video.play().catch(() => {});
  }

  function stopMedia() {
    if (localTile) {
      localTile.video.srcObject = null;
      localTile.figure.remove();
      localTile = null;
    }
    if (localStream) {
      for (const track of localStream.getTracks()) track.stop();
      localStream = null;
    }
  }

  /** The device's facts as the page was served with them (read by index.html's script), or
   *  null. */
  function embeddedInfo() {
    const found = window.peercamEarly && window.peercamEarly.info;
    return found && typeof found.conversation === 'string' && typeof found.signaling === 'string'
      ? found
      : null;
  }

  async function start() {
    document.body.dataset.mode = mode;
    setSound(soundOn);
    el.sound.addEventListener('click', () => setSound(!soundOn));
    el.stats.hidden = false;
    if (fullscreen.available) {
      el.fullscreen.hidden = false;
      el.fullscreen.addEventListener('click', toggleFullscreen);
      fullscreen.onChange(() => {
        const on = fullscreen.current() !== null;
        el.fullscreen.textContent = on ? 'Exit fullscreen' : 'Fullscreen';
      });
    }
    addEventListener('keydown', onKey);
    if (mode === 'room') {
      el.invite.hidden = false;
      el.invite.addEventListener('click', invite);
      el.leave.hidden = false;
      el.leave.addEventListener('click', leave);
      el.rejoin.addEventListener('click', rejoin);
    } else {
      el.roomForm.hidden = false;
    }
    addEventListener('pagehide', () => {
      // Tell the server now instead of letting it wait for the socket to time out.
      if (ws) ws.close();
    });
    info = embeddedInfo();
    while (!info) {
      try {
        const res = await fetch('/api/info', { cache: 'no-store' });
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        info = await res.json();
      } catch (err) {
        setState('disconnected', `Cannot reach the camera (${err.message}); retrying…`);
        await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
      }
    }
    if (mode === 'room') {
      document.title = `${room} · ${info.name}`;
      await startMedia();
    }
    connect();
  }

  start();
})();
