// Fullscreen through the Fullscreen API, prefixed where Safari still needs it. An iPhone has no
// element fullscreen at all, only a <video>'s own player (webkitEnterFullscreen); there the
// video inside the element is used. Where none of this exists, `available` is false and the
// page shows no fullscreen control.
'use strict';

const doc = document;

const api = Boolean(doc.fullscreenEnabled || doc.webkitFullscreenEnabled);
const videoOnly = !api && typeof HTMLVideoElement !== 'undefined' &&
  'webkitEnterFullscreen' in HTMLVideoElement.prototype;

/** Whether this browser can show something fullscreen. */
export const available = api || videoOnly;

/** The element shown fullscreen, or null. */
export function current() {
  return doc.fullscreenElement || doc.webkitFullscreenElement || null;
}

function report(err) {
  // Refused, e.g. without a click first: nothing changes, which the viewer sees.
  console.warn(`fullscreen: ${err.message}`);
}

/** Shows `element` fullscreen (for an iPhone: the first video in it). */
export function enter(element) {
  if (api) {
    const request = element.requestFullscreen || element.webkitRequestFullscreen;
    const done = request.call(element);
    if (done && done.catch) done.catch(report);
    return;
  }
  const video = element instanceof HTMLVideoElement ? element : element.querySelector('video');
  if (videoOnly && video && video.readyState > 0) video.webkitEnterFullscreen();
}

export function exit() {
  if (!current()) return;
  const leave = doc.exitFullscreen || doc.webkitExitFullscreen;
  const done = leave.call(doc);
  if (done && done.catch) done.catch(report);
}

/** `element` fullscreen, or back if it already is. */
export function toggle(element) {
  if (current() === element) exit();
  else enter(element);
}

/** Calls `fn` whenever something enters or leaves fullscreen. */
export function onChange(fn) {
  doc.addEventListener('fullscreenchange', fn);
  doc.addEventListener('webkitfullscreenchange', fn);
}
