// The page's DOM: the state it is in and the status line that says it, the notice, the grid of
// video tiles (this browser's own and one per remote member), sound, the controls (Stats,
// Fullscreen, Invite, Leave, Rejoin, the room form) and their keys, and the stats overlay.
// Layout itself is style.css's.
//
// Owns the elements, the page's state as shown (`state`, `history`) and whether sound is on.
// Must not signal, negotiate or open the camera: it shows what it is told and hands clicks to
// the callbacks it was given.
'use strict';

import { createOverlay } from '/overlay.js';
import * as fullscreen from '/fullscreen.js';
import { withToken } from '/signaling.js';

/** The view of a page in `mode` ('watch' or 'room'). */
export function createView({ mode }) {
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

  let state = 'connecting';
  /** Every state the page went through, for tests and troubleshooting. */
  const history = ['connecting'];
  /** Why this browser sends no camera, when it sends none (nodes: it may hold a link). It
   *  stays in the notice, which shows it again when a passing message is cleared. */
  let mediaNotice = null;
  // Watch mode starts muted so that autoplay is allowed everywhere; in a call people expect
  // to hear each other, and a page that captures media may autoplay with sound.
  let soundOn = mode === 'room';
  /** The videos of the remote members' tiles. */
  const remote = new Set();
  /** The tile that shows this browser's camera. */
  let localTile = null;
  /** The stats overlay, made by `setUp`. */
  let overlay = null;

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
  function insecureNotice(info) {
    const why = 'This browser allows the camera and microphone only on https:// or localhost ' +
      'pages; you can see the others but they cannot see you.';
    if (!info.tls || !info.fingerprint || location.protocol !== 'http:') return [why];
    // With the token this page was opened with: the https origin may not have the cookie.
    const url = `https://${location.host}${withToken(`${location.pathname}${location.search}`)}`;
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

  /** A new tile in the grid: {figure, video}. `onPlaying` is called whenever its video starts
   *  playing. */
  function makeTile(caption, { local = false, onPlaying = null } = {}) {
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
    if (onPlaying) video.addEventListener('playing', onPlaying);
    figure.append(video);
    if (mode === 'room') {
      const text = document.createElement('figcaption');
      text.textContent = caption;
      figure.append(text);
    }
    el.grid.append(figure);
    if (!local) {
      remote.add(video);
      el.sound.hidden = false;
    }
    return { figure, video };
  }

  /** Takes `tile` (what makeTile returned, or an object holding its figure and video) out. */
  function removeTile(tile) {
    tile.video.srcObject = null;
    tile.figure.remove();
    if (remote.delete(tile.video)) el.sound.hidden = remote.size === 0;
  }

  /** Plays `stream` in `video`; false when it was playing it already. */
  function showStream(video, stream) {
    if (video.srcObject === stream) return false;
    video.srcObject = stream;
    play(video);
    return true;
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
    for (const video of remote) video.muted = !on;
  }

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

  /** Shows the controls of the mode and hands their clicks to `invite`, `leave` and `rejoin`;
   *  the stats overlay shows the figures of `peers()` ({id, pc, figure} each). */
  function setUp({ peers, invite, leave, rejoin }) {
    overlay = createOverlay({ peers, button: el.stats });
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
  }

  return {
    setState,
    showNotice,
    setMediaNotice,
    insecureNotice,
    makeTile,
    removeTile,
    showStream,
    setUp,
    setTitle(title) {
      document.title = title;
    },
    /** Shows `stream`, this browser's camera, in a tile of its own. */
    showLocal(stream) {
      localTile = makeTile('You', { local: true });
      localTile.video.srcObject = stream;
      localTile.video.play().catch(() => {});
    },
    hideLocal() {
      if (!localTile) return;
      removeTile(localTile);
      localTile = null;
    },
    /** The call was left: Rejoin instead of Leave and Invite. */
    leftCall() {
      const hadFocus = document.activeElement === el.leave;
      el.leave.hidden = true;
      el.invite.hidden = true;
      el.rejoin.hidden = false;
      if (hadFocus) el.rejoin.focus();
    },
    /** Back in the call: Leave and Invite instead of Rejoin. */
    backInCall() {
      const hadFocus = document.activeElement === el.rejoin;
      el.rejoin.hidden = true;
      el.leave.hidden = false;
      el.invite.hidden = false;
      if (hadFocus) el.leave.focus();
    },
    get state() {
      return state;
    },
    get history() {
      return history.slice();
    },
    get status() {
      return el.status.textContent;
    },
    get notice() {
      return el.notice.hidden ? '' : el.notice.textContent;
    },
    get overlay() {
      return overlay;
    },
  };
}
