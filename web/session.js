// Being in the conversation: what to join (the camera's broadcast, or the room), what each
// signal from the server means for the page, asking again after "busy", "ended" or "no camera
// yet", leaving and rejoining, inviting the camera into a call, and the status line that says
// where all this stands. Also the device's facts (`/api/info`) and the call's own camera.
//
// Owns the conversation, the errors so far and the rejoin timer. Must not touch the DOM
// (view.js), the socket (signaling.js), a peer connection (peers.js) or getUserMedia
// (media.js) other than through them.
'use strict';

import { embeddedInfo, RECONNECT_MS } from '/signaling.js';
import * as timing from '/timing.js';

// After "busy", "ended" or "no camera yet": how long to wait before asking again. Long
// enough not to churn the server, short enough that a freed slot is noticed soon.
const REJOIN_MS = 5000;

/**
 * The session of a page in `mode` ('watch' or 'room'; in a room, `room` is its name and
 * `autoInvite` whether to invite the camera on joining).
 */
export function createSession({ mode, room, autoInvite, view, media, signaling, peers }) {
  /** `/api/info`: {name, version, conversation, signaling, tls, fingerprint}. */
  let info = null;
  /** The conversation we are in, '' when none. */
  let conversation = '';
  /** Set by errors after which retrying cannot help (forbidden origin, unauthorized). */
  let fatal = false;
  /** The server refused the connection with SERVER_BUSY and is about to close it. */
  let refusedBusy = false;
  let rejoinTimer = 0;
  let invited = false;
  /** The user left (the Leave button): stay out, even across reconnects, until Rejoin. */
  let userLeft = false;
  /** Every `error` the server sent and every failed negotiation, oldest first. */
  const errors = [];

  function target() {
    return mode === 'watch' ? info.conversation : room;
  }

  function join() {
    clearTimeout(rejoinTimer);
    invited = false;
    timing.joining();
    signaling.send('join', { content: target() });
    // After the send, so the join is not held back; the offer cannot be read before this
    // returns.
    peers.prepare();
    timing.mark('prepared');
  }

  function scheduleRejoin() {
    clearTimeout(rejoinTimer);
    rejoinTimer = setTimeout(() => {
      if (!conversation && !userLeft) join();
    }, REJOIN_MS);
  }

  // ---- the signaling connection --------------------------------------------------------

  function connecting() {
    view.setState('connecting', `Connecting to ${info.name}…`);
  }

  function opened() {
    if (!userLeft) join();
  }

  function closed() {
    conversation = '';
    peers.closeAll();
    if (fatal) return;
    // After SERVER_BUSY the close is expected and "busy" stays the better explanation.
    if (!refusedBusy && !userLeft) {
      view.setState('disconnected', `Disconnected from ${info.name}; reconnecting…`);
    }
    refusedBusy = false;
    signaling.reconnectLater();
  }

  function onSignal(signal, { from, content, custom }) {
    switch (signal) {
      case 'created':
        onJoined(content, true);
        break;
      case 'joined':
        onJoined(content, false);
        break;
      case 'offerrequest':
        peers.offer(from);
        break;
      case 'answerrequest':
        timing.mark('offer');
        peers.answer(from, content);
        break;
      case 'finalize':
        peers.answered(from, content);
        break;
      case 'candidate':
        peers.candidate(from, content);
        break;
      case 'left':
        peers.close(from);
        refresh();
        break;
      case 'end':
        onEnd();
        break;
      case 'error':
        onError(content, (custom && custom.message) || content, from);
        break;
      default:
        // ping (signaling.js read its `to`), newJoined, text, and signals added later.
        break;
    }
  }

  function onJoined(conv, created) {
    conversation = conv;
    if (mode === 'watch' && created) {
      // The join created the conversation, so the camera is not serving it. Leave at once
      // rather than sit on the id the camera will want when it starts, and ask again later.
      signaling.send('left');
      conversation = '';
      view.setState('waiting', `${info.name} is not streaming right now; waiting for it…`);
      scheduleRejoin();
      return;
    }
    if (mode === 'room' && autoInvite && !invited) invite();
    refresh();
  }

  function onEnd() {
    peers.closeAll();
    conversation = '';
    view.setState('ended', `${info.name} stopped streaming; waiting for it to come back…`);
    scheduleRejoin();
  }

  function onError(code, message, from) {
    errors.push({ code, message, from });
    console.warn(`signaling error ${code}: ${message}`);
    switch (code) {
      case 'VIEWER_LIMIT':
        view.setState('busy', viewerLimitText(message));
        scheduleRejoin();
        break;
      case 'CONVERSATION_NOT_FOUND':
        if (mode === 'watch') {
          view.setState('waiting', `${info.name} is not streaming right now; waiting for it…`);
          scheduleRejoin();
        } else {
          view.showNotice(message);
        }
        break;
      case 'FORBIDDEN_ORIGIN':
      case 'UNAUTHORIZED':
        fatal = true;
        view.setState('error', message);
        break;
      case 'NEGOTIATION_FAILED':
        // The camera (or another member) gave up on this connection and says why, e.g. a
        // browser that can decode none of the camera's video. Trying again would fail the
        // same way, so the page says it and waits for the person.
        if (from) peers.close(from);
        if (mode === 'watch') {
          view.setState('failed', `${info.name} could not connect to this browser: ${message}`);
        } else {
          view.showNotice(`Could not connect to ${from || 'a member'}: ${message}`);
          refresh();
        }
        break;
      case 'SERVER_BUSY':
        // The server closes the socket after this; the reconnect timer takes it from there.
        refusedBusy = true;
        view.setState('busy', `${info.name} is busy: ${message}. Trying again shortly…`);
        break;
      default:
        view.showNotice(`${code}: ${message}`);
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
    const all = peers.list();
    if (mode === 'watch') {
      const playing = all.filter((p) => p.playing);
      if (playing.some((p) => p.hasAudio)) view.setState('live', 'Live');
      else if (playing.length) view.setState('live', 'Live · the camera sends no sound');
      else view.setState('waiting', `Waiting for ${info.name}'s video…`);
      return;
    }
    // In a call, someone connected without a camera still counts as being there.
    const present = all.filter((p) => p.playing || p.pc.connectionState === 'connected').length;
    if (present) {
      const others = present === 1 ? '1 other' : `${present} others`;
      view.setState('live', `Live in room “${room}” with ${others}`);
    } else {
      view.setState('waiting', `In room “${room}”; waiting for others to join…`);
    }
  }

  function invite() {
    invited = true;
    view.showNotice('');
    signaling.send('invite', { content: room });
  }

  // ---- peers ---------------------------------------------------------------------------

  /** What member `id` is called: the device by its name, anyone else by id. */
  function label(id) {
    if (info && id === info.conversation) return info.name;
    // Invited into a call, the device is member `<conversation>-<n>`.
    const n = info ? id.slice(info.conversation.length + 1) : '';
    if (info && id === `${info.conversation}-${n}` && /^\d+$/.test(n)) return info.name;
    return id;
  }

  function peerFailed(id, err) {
    errors.push({ code: 'WEBRTC', message: `${id}: ${err.message}` });
    console.warn(`peer ${id}: ${err.message}`);
    view.showNotice(`Connection with ${label(id)} failed: ${err.message}`);
  }

  /** A peer's connection failed for good. */
  function peerLost() {
    if (mode === 'watch') {
      // Negotiating afresh is the only way back; the server starts it on a new join.
      signaling.send('left');
      conversation = '';
      peers.closeAll();
      view.setState('waiting', `Lost the video from ${info.name}; trying again shortly…`);
      scheduleRejoin();
      return;
    }
    refresh();
  }

  // ---- leaving and coming back ---------------------------------------------------------

  function leave() {
    userLeft = true;
    clearTimeout(rejoinTimer);
    signaling.cancelReconnect();
    signaling.send('left');
    conversation = '';
    peers.closeAll();
    if (mode === 'room') {
      // Leaving a call turns this browser's camera and microphone off.
      stopMedia();
      view.leftCall();
      view.setState('left', `You left room “${room}”.`);
    } else {
      view.setState('left', 'You left.');
    }
  }

  async function rejoin() {
    if (!userLeft) return;
    userLeft = false;
    view.showNotice('');
    if (mode === 'room') {
      view.backInCall();
      await startMedia();
    }
    if (signaling.open) join();
    else if (signaling.closed) signaling.connect();
    // A socket still opening joins when it opens.
  }

  // ---- start ---------------------------------------------------------------------------

  async function startMedia() {
    view.setMediaNotice();
    if (!media.available) {
      view.setMediaNotice(...view.insecureNotice(info));
      return;
    }
    view.setState('connecting', 'Starting your camera…');
    const stream = await media.open();
    if (!stream) {
      view.setMediaNotice('No camera or microphone could be opened; you can see the others but ' +
        'they cannot see you.');
      return;
    }
    view.showLocal(stream);
  }

  function stopMedia() {
    view.hideLocal();
    media.stop();
  }

  /** Learns the device's facts, opens the call's camera, and connects. */
  async function start() {
    info = embeddedInfo();
    while (!info) {
      try {
        const res = await fetch('/api/info', { cache: 'no-store' });
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        info = await res.json();
      } catch (err) {
        view.setState('disconnected', `Cannot reach the camera (${err.message}); retrying…`);
        await new Promise((resolve) => setTimeout(resolve, RECONNECT_MS));
      }
    }
    if (mode === 'room') {
      view.setTitle(`${room} · ${info.name}`);
      await startMedia();
    }
    signaling.connect();
  }

  return {
    start,
    join,
    invite,
    leave,
    rejoin,
    label,
    peerFailed,
    peerLost,
    refresh,
    connecting,
    opened,
    closed,
    onSignal,
    /** The device's facts, null until known. */
    get info() {
      return info;
    },
    get conversation() {
      return conversation;
    },
    get errors() {
      return errors.slice();
    },
  };
}
