// Time to picture: when the last join was sent, when its first frame was shown, and the steps
// between them (offer received, answer sent, ICE connected, DTLS connected, track, the first
// frame decoded), all in milliseconds since the page started loading. Read through
// `window.peercam.timing` by the join benchmark and by people troubleshooting.
//
// Owns only these figures. Must not change what the page does: it is told what happened and
// never acts on it.
'use strict';

/** The last join sent, the first frame shown after it. What a user feels as "time to picture". */
const timing = { join: null, firstFrame: null };
/** The steps between them, same clock, for the last join. */
const steps = {};

/** A join is being sent: the figures start again. */
export function joining() {
  timing.join = performance.now();
  timing.firstFrame = null;
  for (const k of Object.keys(steps)) delete steps[k];
}

/** Step `name` of the last join happened now (the first time only). */
export function mark(name) {
  if (timing.join != null && steps[name] == null) steps[name] = performance.now();
}

/** Notes when `video`, just given a new stream, shows its first frame. */
export function watchFirstFrame(video) {
  if (!video.requestVideoFrameCallback) return;
  video.requestVideoFrameCallback((now, meta) => {
    timing.firstFrame ??= performance.now();
    // When the frame's last packet arrived plus its decoding time.
    if (steps.decoded == null && meta && meta.receiveTime && timing.join != null) {
      steps.decoded = meta.receiveTime + (meta.processingDuration || 0) * 1000;
    }
  });
}

/** A copy of the figures: {join, firstFrame, steps: {name: ms}}. */
export function snapshot() {
  return { ...timing, steps: { ...steps } };
}
