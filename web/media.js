// This browser's camera and microphone, for a call (room mode): getUserMedia, asking for less
// when everything cannot be had, and turning them off again.
//
// Owns the local stream. Must not touch the DOM (view.js shows the stream and says why there
// is none), signal, or negotiate: peers.js adds the stream's tracks to its connections.
'use strict';

export function createMedia() {
  /** This browser's camera and microphone, null while they are off. */
  let stream = null;

  return {
    /** Whether this page may ask for the camera at all (only secure contexts may). */
    get available() {
      return Boolean(navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
    },
    get stream() {
      return stream;
    },
    /** Opens the camera and microphone, or what of them there is; the stream or null. */
    async open() {
      const want = [{ video: true, audio: true }, { video: true }, { audio: true }];
      for (const constraints of want) {
        try {
          stream = await navigator.mediaDevices.getUserMedia(constraints);
          break;
        } catch {
          // Try with less: a laptop without a microphone can still send video.
        }
      }
      return stream;
    },
    /** Turns the camera and microphone off. */
    stop() {
      if (!stream) return;
      for (const track of stream.getTracks()) track.stop();
      stream = null;
    },
  };
}
