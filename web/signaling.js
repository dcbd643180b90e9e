// The nextRTC client (see PROTOCOL.md): one WebSocket to the device, the envelope
// {signal, to, content, custom} both ways, our member id (the `to` of what the server sends,
// its pings included), and opening the socket again a while after it drops. The first time it
// takes over the socket index.html opened while the page loaded, with what arrived on it.
//
// Owns the socket and the reconnect timer. Must not decide what a signal means for the page
// (session.js does), touch the DOM, or touch a peer connection: it passes each message on as
// (signal, {from, content, custom}).
'use strict';

/** After the WebSocket drops (device restarting, Wi-Fi blip): how long before trying again. */
export const RECONNECT_MS = 3000;

/** `path` with the access token the page was opened with, if any: for a link to the device's
 *  other origin, where its cookie may not be (this page's own requests carry the cookie). */
export function withToken(path) {
  const token = window.peercamToken;
  if (!token) return path;
  return `${path}${path.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}`;
}

/** The device's facts as the page was served with them (read by index.html's script), or
 *  null. */
export function embeddedInfo() {
  const found = window.peercamEarly && window.peercamEarly.info;
  return found && typeof found.conversation === 'string' && typeof found.signaling === 'string'
    ? found
    : null;
}

/**
 * The client. `path()` is the signaling endpoint's path; the callbacks tell the page what
 * happens: `onConnecting()` before a socket is opened, `onOpen()`, `onSignal(signal, {from,
 * content, custom})` with the signal's name in lower case, `onClose()` when the socket in use
 * closed (the page then calls `reconnectLater()` if it wants to).
 */
export function createSignaling({ path, onConnecting, onOpen, onSignal, onClose }) {
  let ws = null;
  /** Our member id, learned from the `to` of what the server sends (nextRTC's `ping`). */
  let myId = '';
  let timer = 0;

  function connect() {
    clearTimeout(timer);
    onConnecting();
    // The first time, the connection index.html opened while the page loaded.
    const early = window.peercamEarly;
    window.peercamEarly = null;
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const socket = early ? early.ws : new WebSocket(`${scheme}//${location.host}${path()}`);
    ws = socket;
    socket.onopen = () => {
      performance.mark('peercam-ws-open');
      onOpen();
    };
    socket.onmessage = (e) => receive(e.data);
    socket.onclose = () => {
      if (ws !== socket) return;
      ws = null;
      onClose();
    };
    if (early) {
      // What arrived before this script ran, then the events already past.
      for (const text of early.messages) receive(text);
      if (socket.readyState === WebSocket.OPEN) socket.onopen();
      else if (socket.readyState === WebSocket.CLOSED) socket.onclose();
    }
  }

  function receive(text) {
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
    onSignal(String(msg.signal || '').toLowerCase(), { from, content, custom: msg.custom });
  }

  /** Sends `signal` with `fields` of the envelope; nothing while the socket is not open. */
  function send(signal, fields = {}) {
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    ws.send(JSON.stringify({ signal, to: '', content: '', custom: {}, ...fields }));
  }

  return {
    connect,
    send,
    /** Opens the socket again in RECONNECT_MS. */
    reconnectLater() {
      timer = setTimeout(connect, RECONNECT_MS);
    },
    cancelReconnect() {
      clearTimeout(timer);
    },
    /** Closes the socket (the page is going away: the server need not wait for a timeout). */
    close() {
      if (ws) ws.close();
    },
    get id() {
      return myId;
    },
    /** Whether the socket is open. */
    get open() {
      return Boolean(ws) && ws.readyState === WebSocket.OPEN;
    },
    /** Whether the last socket has closed, or none was opened yet. */
    get closed() {
      return !ws;
    },
  };
}
