// Push to talk (watch mode): while the button is held (or Space/Enter on it), this browser's
// microphone goes to the camera's speaker. The camera gives the floor to one viewer at a time
// (the `talk` signal, README's "The protocol in brief"): the next one is told in words that
// someone is talking.
//
// The microphone is opened on the press and closed on the release, so the browser shows it in
// use only while the person talks; it goes on the sender the camera's offer left for it
// (peers.js, acceptTalk) once the camera says `on`. Browsers allow the microphone only on
// https (or localhost): elsewhere the button is shown disabled and says so.
//
// Owns the button, the microphone track and the talk state. Must not negotiate.
'use strict';

/** States, as `window.peercam.talk.state` shows them. */
const IDLE = 'idle';
const ASKING = 'asking';
const TALKING = 'talking';

export function setUpTalk(button, { send, peers, view }) {
  let state = IDLE;
  /** The person is holding the button. */
  let held = false;
  let track = null;
  /** Every `talk` the camera sent: {state, message}. */
  const heard = [];

  function sender() {
    const p = peers.list().find((x) => x.talkSender);
    return p ? p.talkSender : null;
  }

  function show(next) {
    state = next;
    button.setAttribute('aria-pressed', String(next !== IDLE));
    button.textContent =
      next === TALKING ? 'Talking… release to stop' : next === ASKING ? 'Wait…' : 'Hold to talk';
  }

  /** Shows or hides the button as the camera's connection allows talking. */
  function refresh() {
    const can = Boolean(sender());
    button.hidden = !can;
    if (!can) {
      if (state !== IDLE) release();
      return;
    }
    const secure = window.isSecureContext && navigator.mediaDevices;
    button.disabled = !secure;
    button.title = secure
      ? 'Hold to talk through the camera\u2019s speaker (Space)'
      : 'Talking through the camera needs this page on https:// (the browser allows the microphone only there)';
  }

  async function press() {
    if (held || button.disabled) return;
    held = true;
    show(ASKING);
    try {
      const stream = await navigator.mediaDevices.getUserMedia({
        audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
      track = stream.getAudioTracks()[0] || null;
    } catch (err) {
      held = false;
      show(IDLE);
      view.showNotice(`The browser did not allow the microphone: ${err.message}`);
      return;
    }
    if (!held) return stopTrack();
    send('talk', { content: 'start' });
  }

  function release() {
    if (!held && state === IDLE) return;
    held = false;
    const s = sender();
    if (s) s.replaceTrack(null).catch(() => {});
    stopTrack();
    show(IDLE);
    send('talk', { content: 'stop' });
  }

  function stopTrack() {
    if (track) track.stop();
    track = null;
  }

  /** The camera's `talk`: where this viewer's talkback stands. */
  async function onSignal({ content, custom }) {
    const message = (custom && custom.message) || '';
    heard.push({ state: content, message });
    switch (content) {
      case 'on': {
        const s = sender();
        if (!held || !track || !s) {
          if (state !== IDLE) release();
          return;
        }
        await s.replaceTrack(track);
        show(TALKING);
        break;
      }
      case 'off':
        if (state !== IDLE) {
          held = false;
          const s = sender();
          if (s) s.replaceTrack(null).catch(() => {});
          stopTrack();
          show(IDLE);
        }
        if (message) view.showNotice(`Talking stopped: ${message}.`);
        break;
      case 'busy':
      case 'unavailable':
        held = false;
        stopTrack();
        show(IDLE);
        view.showNotice(`You cannot talk now: ${message}.`);
        break;
      default:
        break;
    }
  }

  button.addEventListener('pointerdown', (e) => {
    if (e.button !== 0) return;
    button.setPointerCapture?.(e.pointerId);
    press();
  });
  for (const ev of ['pointerup', 'pointercancel', 'lostpointercapture']) {
    button.addEventListener(ev, release);
  }
  button.addEventListener('keydown', (e) => {
    if ((e.key === ' ' || e.key === 'Enter') && !e.repeat) {
      e.preventDefault();
      press();
    }
  });
  button.addEventListener('keyup', (e) => {
    if (e.key === ' ' || e.key === 'Enter') release();
  });
  button.addEventListener('blur', release);
  document.addEventListener('visibilitychange', () => {
    if (document.hidden) release();
  });
  show(IDLE);

  return {
    refresh,
    onSignal,
    press,
    release,
    get state() {
      return state;
    },
    get heard() {
      return heard.slice();
    },
  };
}
