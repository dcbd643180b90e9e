// The other peercam cameras on this network, as the device sees them (GET /api/cameras: the
// device browses mDNS, which a browser cannot): a list of links under the video, kept current
// as cameras come and go. It must not touch the signaling or the video.
'use strict';

// How often the list is asked for again.
const REFRESH_MS = 5000;

// Fills `nav` (a <nav> with a <ul>) with the other cameras and keeps it current; hidden while
// there are none.
export function showCameras(nav) {
  if (!nav) return;
  const list = nav.querySelector('ul');
  let last = '';
  const render = (cameras) => {
    const key = JSON.stringify(cameras);
    if (key === last) return;
    last = key;
    list.replaceChildren(...cameras.map(item));
    nav.hidden = cameras.length === 0;
  };
  const refresh = async () => {
    try {
      const reply = await fetch('/api/cameras', { cache: 'no-store' });
      if (reply.ok) render((await reply.json()).cameras || []);
    } catch {
      // The device is restarting or the network is down: keep what is shown.
    }
  };
  refresh();
  setInterval(refresh, REFRESH_MS);
}

// One camera: its name linking to its page, the plain-http link when it also has https, and
// whether it asks for its own link.
function item(camera) {
  const li = document.createElement('li');
  const link = document.createElement('a');
  link.href = camera.url;
  link.textContent = camera.name;
  li.append(link);
  if (camera.http_url && camera.http_url !== camera.url) {
    const plain = document.createElement('a');
    plain.href = camera.http_url;
    plain.textContent = 'http';
    plain.className = 'alt';
    li.append(' ', plain);
  }
  if (camera.txt && camera.txt.auth === '1') {
    const note = document.createElement('span');
    note.className = 'note';
    note.textContent = ' (asks for its own link: get it from its owner)';
    li.append(note);
  }
  return li;
}
