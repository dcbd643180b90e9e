// `window.peercam`: what tests (tests/browser) and people troubleshooting read instead of
// scraping the DOM: the state and its history, the status and notice, our id and
// conversation, the errors, the peers and their video, the timing of the last join, the stats
// overlay's figures, push to talk, and the user's actions (invite, leave, rejoin, join).
//
// Owns nothing: every figure is read from the module that owns it, every action is that
// module's own. Must not add behaviour of its own.
'use strict';

import * as fullscreen from '/fullscreen.js';
import * as timing from '/timing.js';

export function installTestHooks({ mode, view, signaling, peers, session, talk }) {
  window.peercam = {
    get mode() { return mode; },
    get state() { return view.state; },
    get status() { return view.status; },
    get notice() { return view.notice; },
    get id() { return signaling.id; },
    get conversation() { return session.conversation; },
    get errors() { return session.errors; },
    get history() { return view.history; },
    get timing() { return timing.snapshot(); },
    peers: () => peers.ids(),
    /** The narrowest remote video's width (0 while any has no frame yet, or none exists). */
    videoWidth: () => peers.videoWidth(),
    stats: peers.stats,
    /** The stats overlay's figures: {shown, updated, peers: [{id, width, height, fps,
     *  bitrate (bit/s), rtt (ms), jitterBufferDelay (ms), codec, packetsLost}]}. */
    overlay: () => view.overlay.figures(),
    showStats: (on) => view.overlay.show(on),
    get fullscreen() { return fullscreen.current() !== null; },
    invite: session.invite,
    leave: session.leave,
    rejoin: session.rejoin,
    join: session.join,
    /** Push to talk: {state ('idle', 'asking', 'talking'), heard (every `talk` the camera
     *  sent: {state, message}), press(), release()}. */
    talk: {
      get state() { return talk.state; },
      get heard() { return talk.heard; },
      press: talk.press,
      release: talk.release,
    },
  };
}
