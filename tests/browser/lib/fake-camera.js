// A stand-in for the device's camera peer, run inside a browser page: it creates the camera's
// BROADCAST conversation and offers the page's fake camera to every viewer that joins, as the
// device does. It lets the watch page's answering side be tested without GStreamer, and
// `silent` makes a broadcaster that never offers.

/**
 * Turns `page` (a page of the device's origin, so the WebSocket's Origin is accepted) into a
 * broadcaster of `conversation`. Resolves once the server has answered `created`.
 */
export async function startFakeCamera(page, conversation, { silent = false } = {}) {
  await page.evaluate(
    async ({ conversation, silent }) => {
      const stream = silent ? null : await navigator.mediaDevices.getUserMedia({ video: true });
      const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
      // The access token of the page's own link, as a nextRTC client carries it.
      const token = new URLSearchParams(location.search).get('token');
      const query = token ? `?token=${encodeURIComponent(token)}` : '';
      const ws = new WebSocket(`${scheme}//${location.host}/signaling${query}`);
      const peers = new Map();
      const cam = { offers: 0, errors: [], viewers: () => [...peers.keys()], close: () => ws.close() };
      window.fakeCamera = cam;
      const send = (m) => ws.send(JSON.stringify({ to: '', content: '', custom: {}, ...m }));
      // Steps of one viewer's negotiation run in order, as in the page.
      const step = (p, fn) => {
        p.queue = p.queue.then(fn).catch((err) => cam.errors.push(`${p.id}: ${err.message}`));
      };
      const onMessage = (m) => {
        const p = peers.get(m.from);
        switch (m.signal) {
          case 'offerRequest': {
            if (silent) return;
            const pc = new RTCPeerConnection({ iceServers: [] });
            const viewer = { id: m.from, pc, queue: Promise.resolve() };
            peers.set(m.from, viewer);
            pc.onicecandidate = (e) => {
              if (e.candidate && e.candidate.candidate) {
                send({ signal: 'candidate', to: m.from, content: JSON.stringify(e.candidate) });
              }
            };
            for (const track of stream.getTracks()) {
              pc.addTransceiver(track, { direction: 'sendonly', streams: [stream] });
            }
            step(viewer, async () => {
              await pc.setLocalDescription(await pc.createOffer());
              send({ signal: 'offerResponse', to: m.from, content: pc.localDescription.sdp });
              cam.offers++;
            });
            break;
          }
          case 'finalize':
            if (p) step(p, () => p.pc.setRemoteDescription({ type: 'answer', sdp: m.content }));
            break;
          case 'candidate':
            if (p) step(p, () => p.pc.addIceCandidate(JSON.parse(m.content)));
            break;
          case 'left':
            if (p) {
              p.pc.close();
              peers.delete(m.from);
            }
            break;
          case 'error':
            cam.errors.push(`${m.content}: ${m.custom && m.custom.message}`);
            break;
          default:
            break;
        }
      };
      await new Promise((resolve, reject) => {
        ws.onopen = resolve;
        ws.onerror = () => reject(new Error('fake camera: WebSocket failed'));
      });
      await new Promise((resolve, reject) => {
        ws.onmessage = (e) => {
          const m = JSON.parse(e.data);
          if (m.signal === 'created') {
            ws.onmessage = (ev) => onMessage(JSON.parse(ev.data));
            resolve();
          } else if (m.signal === 'error') {
            reject(new Error(`fake camera: ${m.content}: ${m.custom && m.custom.message}`));
          }
        };
        send({ signal: 'create', content: conversation, custom: { type: 'BROADCAST' } });
      });
    },
    { conversation, silent },
  );
}
