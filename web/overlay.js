// The stats overlay: over each remote video, what the browser's getStats() says about it.
//
//   1280×720 · 30 fps · H264
//   2.14 Mbit/s · 0 lost
//   RTT 0.4 ms · jitter buffer 31 ms
//
// Resolution, codec and packets lost come from the inbound video stream; the frame rate from
// its framesPerSecond (else the frames decoded since the last look); the bitrate from the bytes
// received since the last look; the round-trip time from the ICE candidate pair in use; the
// jitter-buffer delay, how long a frame waited in the browser before it was decoded, from
// jitterBufferDelay / jitterBufferEmittedCount since the last look.
//
// getStats() runs once a second, and only while the overlay is shown: a viewer who never opens
// it costs the page nothing.
'use strict';

const POLL_MS = 1000;
/** Where the viewer's choice is remembered. */
const STORAGE_KEY = 'peercam.stats';

/**
 * The figures of one peer connection's stats `report`. `prev` is what the last call returned
 * as `counters` for the same connection (or null); rates are taken over the time between them.
 * Returns {figures, counters}. Unknown figures are null.
 */
export function figuresOf(report, prev) {
  let inbound = null;
  let pair = null;
  let selectedPairId = '';
  report.forEach((r) => {
    if (r.type === 'inbound-rtp' && r.kind === 'video') {
      // Two only across a renegotiation; the one receiving is the one that counts.
      if (!inbound || (r.bytesReceived || 0) > (inbound.bytesReceived || 0)) inbound = r;
    } else if (r.type === 'transport' && r.selectedCandidatePairId) {
      selectedPairId = r.selectedCandidatePairId;
    } else if (r.type === 'candidate-pair' && !pair) {
      // Browsers without transport stats mark the pair in use instead.
      if (r.selected || (r.nominated && r.state === 'succeeded')) pair = r;
    }
  });
  if (selectedPairId && report.get(selectedPairId)) pair = report.get(selectedPairId);

  const figures = {
    width: null,
    height: null,
    fps: null,
    bitrate: null,
    rtt: null,
    jitterBufferDelay: null,
    codec: '',
    packetsLost: null,
    framesDecoded: 0,
  };
  if (pair && typeof pair.currentRoundTripTime === 'number') {
    figures.rtt = pair.currentRoundTripTime * 1000;
  }
  if (!inbound) return { figures, counters: null };

  const counters = {
    ssrc: inbound.ssrc,
    at: inbound.timestamp,
    bytes: inbound.bytesReceived || 0,
    frames: inbound.framesDecoded || 0,
    waited: inbound.jitterBufferDelay || 0,
    emitted: inbound.jitterBufferEmittedCount || 0,
  };
  // Rates need an earlier look at the same stream.
  const p = prev && prev.ssrc === counters.ssrc && counters.at > prev.at ? prev : null;
  const seconds = p ? (counters.at - p.at) / 1000 : 0;

  figures.width = inbound.frameWidth || null;
  figures.height = inbound.frameHeight || null;
  if (typeof inbound.framesPerSecond === 'number') figures.fps = inbound.framesPerSecond;
  else if (p) figures.fps = (counters.frames - p.frames) / seconds;
  if (p) figures.bitrate = ((counters.bytes - p.bytes) * 8) / seconds;
  // With no earlier look, the average since the start is the best there is.
  const emitted = counters.emitted - (p ? p.emitted : 0);
  const waited = counters.waited - (p ? p.waited : 0);
  if (emitted > 0) figures.jitterBufferDelay = (waited / emitted) * 1000;
  const codec = inbound.codecId ? report.get(inbound.codecId) : null;
  if (codec && codec.mimeType) figures.codec = codec.mimeType.replace(/^video\//i, '');
  if (typeof inbound.packetsLost === 'number') figures.packetsLost = inbound.packetsLost;
  figures.framesDecoded = counters.frames;
  return { figures, counters };
}

function ms(v) {
  if (v == null) return '–';
  return v < 10 ? `${v.toFixed(1)} ms` : `${Math.round(v)} ms`;
}

function bitrate(v) {
  if (v == null) return '– bit/s';
  if (v >= 1e6) return `${(v / 1e6).toFixed(2)} Mbit/s`;
  return `${Math.round(v / 1e3)} kbit/s`;
}

/** The overlay's three lines. */
export function describe(f) {
  const size = f.width ? `${f.width}×${f.height}` : '–×–';
  const fps = f.fps == null ? '– fps' : `${Math.round(f.fps)} fps`;
  const lost = f.packetsLost == null ? '–' : String(f.packetsLost);
  return [
    [size, fps, f.codec].filter(Boolean).join(' · '),
    `${bitrate(f.bitrate)} · ${lost} lost`,
    `RTT ${ms(f.rtt)} · jitter buffer ${ms(f.jitterBufferDelay)}`,
  ].join('\n');
}

function stored() {
  try {
    return localStorage.getItem(STORAGE_KEY);
  } catch {
    // Storage can be off (privacy settings); the overlay then simply starts hidden.
    return null;
  }
}

function store(on) {
  try {
    localStorage.setItem(STORAGE_KEY, on ? '1' : '0');
  } catch {
    // As above: the choice lasts for this page only.
  }
}

/**
 * The overlay of the remote videos `peers()` returns ({id, pc, figure} each), toggled by
 * `button`. It starts shown when the URL says `stats=1`, else as the viewer last left it.
 */
export function createOverlay({ peers, button }) {
  /** The last counters per peer connection, for rates. */
  const counters = new WeakMap();
  let shown = false;
  let timer = 0;
  /** Bumped on every show and hide, so that a poll under way when it changed is dropped. */
  let generation = 0;
  /** The figures of the last poll, per peer. */
  let latest = [];
  /** performance.now() of the last poll. */
  let updated = null;

  function boxOf(figure) {
    let box = figure.querySelector(':scope > .stats');
    if (!box) {
      box = document.createElement('div');
      box.className = 'stats';
      box.textContent = '…';
      figure.append(box);
    }
    return box;
  }

  async function poll(gen) {
    const list = peers();
    const reports = await Promise.all(
      list.map((p) => p.pc.getStats().catch(() => null)), // closed meanwhile
    );
    if (gen !== generation) return;
    latest = [];
    list.forEach((p, i) => {
      if (!reports[i]) return;
      const { figures, counters: now } = figuresOf(reports[i], counters.get(p.pc) || null);
      if (now) counters.set(p.pc, now);
      latest.push({ id: p.id, ...figures });
      boxOf(p.figure).textContent = describe(figures);
    });
    updated = performance.now();
    timer = setTimeout(() => poll(gen), POLL_MS);
  }

  function show(on, { remember = true } = {}) {
    on = Boolean(on);
    if (remember) store(on);
    if (on === shown) return;
    shown = on;
    generation += 1;
    clearTimeout(timer);
    button.setAttribute('aria-pressed', String(on));
    if (on) {
      poll(generation);
    } else {
      latest = [];
      updated = null;
      for (const box of document.querySelectorAll('.stats')) box.remove();
    }
  }

  button.addEventListener('click', () => show(!shown));
  const param = new URLSearchParams(location.search).get('stats');
  show(param != null ? param !== '0' : stored() === '1', { remember: false });

  return {
    get shown() {
      return shown;
    },
    show,
    toggle: () => show(!shown),
    /** What the overlay shows, as numbers: {shown, updated, peers: [{id, width, …}]}. */
    figures: () => ({ shown, updated, peers: latest.map((f) => ({ ...f })) }),
  };
}
