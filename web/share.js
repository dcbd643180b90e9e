// The Share control: the link that opens this camera (as this browser reached it, with the
// access token) and its QR code, so a phone opens the camera by pointing its camera at the
// screen. The device makes both (GET /api/share, behind the same access check as the page).
// It must not keep the link anywhere: a rotated token replaces it.
'use strict';

// Wires `button` to open `dialog` (a <dialog> with an <img>, a <code> and a close button).
export function setUpShare(button, dialog) {
  if (!button || !dialog || typeof dialog.showModal !== 'function') return;
  const img = dialog.querySelector('img');
  const code = dialog.querySelector('code.share-link');
  const status = dialog.querySelector('.share-status');
  button.hidden = false;
  button.addEventListener('click', async () => {
    status.textContent = '';
    try {
      const reply = await fetch('/api/share', { cache: 'no-store' });
      if (!reply.ok) throw new Error(`the camera answered ${reply.status}`);
      const share = await reply.json();
      img.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(share.svg)}`;
      code.textContent = share.link;
    } catch (e) {
      img.removeAttribute('src');
      code.textContent = '';
      status.textContent = `The link could not be fetched: ${e.message}.`;
    }
    dialog.showModal();
  });
  dialog.querySelector('button.close')?.addEventListener('click', () => dialog.close());
}
