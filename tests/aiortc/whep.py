"""A WHEP player made with aiortc: it posts a recvonly offer to the device's WHEP URL over
plain HTTP (the standard library's client), plays what comes back, and ends its session.

    whep.py URL [--token T] [--frames 60] [--timeout 30] [--keep]

It prints one JSON line: the HTTP status and headers of the POST, the frames it decoded and
their size, the status of its DELETE; exit 0 once `--frames` frames were decoded, 1 otherwise.
With `--keep` it does not send DELETE (the device must notice the player went silent).
"""

import argparse
import asyncio
import json
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from aiortc import RTCPeerConnection, RTCSessionDescription


def http(method, url, token, body=None, content_type=None):
    """(status, headers, body text) of one request."""
    request = urllib.request.Request(url, data=body, method=method)
    if content_type:
        request.add_header("Content-Type", content_type)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=20) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


async def run(args):
    result = {"frames": 0, "width": None, "height": None, "errors": []}
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    done = asyncio.Event()

    @pc.on("connectionstatechange")
    async def on_state():
        if pc.connectionState == "failed":
            result["errors"].append("connection failed")
            done.set()

    @pc.on("track")
    def on_track(track):
        async def count():
            try:
                while result["frames"] < args.frames:
                    frame = await track.recv()
                    result["frames"] += 1
                    result["width"], result["height"] = frame.width, frame.height
            except Exception as e:  # the track ended
                result["errors"].append(f"track: {e}")
            done.set()

        asyncio.ensure_future(count())

    started = time.monotonic()
    # aiortc gathers every candidate before it returns the offer: no trickle needed.
    await pc.setLocalDescription(await pc.createOffer())
    status, headers, body = await asyncio.to_thread(
        http, "POST", args.url, args.token, pc.localDescription.sdp.encode(), "application/sdp"
    )
    result["post"] = {
        "status": status,
        "location": headers.get("Location"),
        "etag": headers.get("ETag"),
        "content_type": headers.get("Content-Type"),
    }
    if status != 201:
        result["errors"].append(body.strip())
    else:
        await pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
        try:
            await asyncio.wait_for(done.wait(), args.timeout)
        except asyncio.TimeoutError:
            result["errors"].append("timeout")
        result["first_frames_s"] = round(time.monotonic() - started, 2)
        if not args.keep:
            session = urllib.parse.urljoin(args.url, headers.get("Location") or "")
            result["delete"], _, _ = await asyncio.to_thread(http, "DELETE", session, args.token)
    await pc.close()
    result["seconds"] = round(time.monotonic() - started, 2)
    print(json.dumps(result), flush=True)
    return 0 if result["frames"] >= args.frames else 1


def main():
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("--token")
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--timeout", type=float, default=30)
    p.add_argument("--keep", action="store_true")
    sys.exit(asyncio.run(run(p.parse_args())))


if __name__ == "__main__":
    main()
