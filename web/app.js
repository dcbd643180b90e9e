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
// This file reads the URL and wires the page's modules together; it must not do their work:
//   signaling.js   the nextRTC client: socket, envelope, our id, reconnecting
//   session.js     the conversation: joining, rejoining, leaving, errors, the status line's text
//   peers.js       one RTCPeerConnection per remote member: offer, answer, candidates, stats
//   media.js       this browser's camera and microphone (room mode)
//   view.js        the DOM: state and status, notice, video tiles, controls, the stats overlay
//   timing.js      time to picture, step by step
//   testhooks.js   window.peercam
//   overlay.js     the stats overlay; fullscreen.js the Fullscreen API
//   cameras.js     the other cameras on this network; share.js the link and its QR code
//   talk.js        push to talk through the camera's speaker (watch mode)
'use strict';

import { createView } from '/view.js';
import { createMedia } from '/media.js';
import { createSignaling } from '/signaling.js';
import { createPeers } from '/peers.js';
import { createSession } from '/session.js';
import { installTestHooks } from '/testhooks.js';
import { showCameras } from '/cameras.js';
import { setUpShare } from '/share.js';
import { setUpTalk } from '/talk.js';

performance.mark('peercam-start');
const params = new URLSearchParams(location.search);
const room = params.get('room') || '';
const mode = room ? 'room' : 'watch';
const autoInvite = params.has('invite') && params.get('invite') !== '0';

// The callbacks below run only once start() has been called, when everything is made.
const view = createView({ mode });
const media = createMedia();
const signaling = createSignaling({
  path: () => session.info.signaling,
  onConnecting: () => session.connecting(),
  onOpen: () => session.opened(),
  onSignal: (signal, msg) => (signal === 'talk' ? talk.onSignal(msg) : session.onSignal(signal, msg)),
  onClose: () => session.closed(),
});
const peers = createPeers({
  mode,
  view,
  send: signaling.send,
  localStream: () => media.stream,
  label: (id) => session.label(id),
  onFailed: (id, err) => session.peerFailed(id, err),
  onLost: () => session.peerLost(),
  onChange: () => {
    session.refresh();
    talk.refresh();
  },
});
const session = createSession({ mode, room, autoInvite, view, media, signaling, peers });
const talk = setUpTalk(document.getElementById('talk'), { send: signaling.send, peers, view });

view.setUp({
  peers: peers.list,
  invite: session.invite,
  leave: session.leave,
  rejoin: session.rejoin,
});
installTestHooks({ mode, view, signaling, peers, session, talk });
addEventListener('pagehide', () => {
  // Tell the server now instead of letting it wait for the socket to time out.
  signaling.close();
});
session.start();
showCameras(document.getElementById('cameras'));
setUpShare(document.getElementById('share'), document.getElementById('share-panel'));
