"""Viewers of a Janus VideoRoom made with aiortc: each subscribes, over Janus's HTTP API, to the
room's publisher (the camera, publishing over WHIP) and decodes what Janus forwards.

    janus_viewer.py URL [--room 1234] [--viewers 1] [--frames 60] [--seconds 0] [--timeout 30]

URL is Janus's HTTP API (`http://HOST:8088/janus`). Each viewer creates a session, attaches to
the VideoRoom plugin, waits for a publisher in the room, joins as its subscriber, answers the
offer Janus makes, sends `start`, and counts the frames it decodes. It prints one JSON line:
per viewer the frames decoded, their size, the codec, how long until the first frame; with
`--seconds`, each viewer also watches that long after its first frame and reports the frame
rate and the longest gap between frames. Exit 0 when every viewer decoded `--frames` frames
(and watched `--seconds`), 1 otherwise. Each viewer's first frame is announced on stderr
(`first frame: viewer N`) as it comes.

Janus's own player (janus.js in a browser) uses the same requests; aiortc decodes without a
browser, so the test needs no display and reports exactly what arrived.
"""

import argparse
import asyncio
import concurrent.futures
import json
import random
import string
import sys
import time
import urllib.error
import urllib.request

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import candidate_from_sdp


def transaction():
    return "".join(random.choices(string.ascii_letters, k=12))


def post(url, body):
    """Janus's reply to one request."""
    data = json.dumps({**body, "transaction": transaction()}).encode()
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as r:
        return json.loads(r.read().decode())


def poll(url):
    """Janus's next events for a session (a long poll: up to 30 s)."""
    with urllib.request.urlopen(f"{url}?maxev=5", timeout=40) as r:
        events = json.loads(r.read().decode())
    return events if isinstance(events, list) else [events]


class Viewer:
    def __init__(self, base, room, args, number):
        self.base, self.room, self.args, self.number = base, room, args, number
        self.result = {"frames": 0, "width": None, "height": None, "codec": None, "errors": []}
        self.pc = RTCPeerConnection()
        self.events = asyncio.Queue()
        self.done = asyncio.Event()
        self.session = self.handle = None

    async def call(self, url, body):
        return await asyncio.to_thread(post, url, body)

    async def run(self):
        started = time.monotonic()
        created = await self.call(self.base, {"janus": "create"})
        self.session = f"{self.base}/{created['data']['id']}"
        poller = asyncio.ensure_future(self.poll_events())
        attached = await self.call(
            self.session, {"janus": "attach", "plugin": "janus.plugin.videoroom"}
        )
        self.handle = f"{self.session}/{attached['data']['id']}"
        feed = await self.publisher(started)
        if feed is None:
            poller.cancel()
            return self.result
        self.result["feed"] = feed
        await self.call(
            self.handle,
            {
                "janus": "message",
                "body": {
                    "request": "join",
                    "ptype": "subscriber",
                    "room": self.room,
                    "streams": [{"feed": feed}],
                },
            },
        )
        offer = await self.wait_offer()
        if offer is None:
            poller.cancel()
            return self.result

        @self.pc.on("track")
        def on_track(track):
            asyncio.ensure_future(self.count(track, started))

        @self.pc.on("connectionstatechange")
        async def on_state():
            if self.pc.connectionState == "failed":
                self.result["errors"].append("connection failed")
                self.done.set()

        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
        await self.pc.setLocalDescription(await self.pc.createAnswer())
        self.result["codec"] = negotiated(self.pc.localDescription.sdp)
        await self.call(
            self.handle,
            {
                "janus": "message",
                "body": {"request": "start"},
                "jsep": {"type": "answer", "sdp": self.pc.localDescription.sdp},
            },
        )
        limit = self.args.timeout + self.args.seconds
        try:
            await asyncio.wait_for(self.done.wait(), limit)
        except asyncio.TimeoutError:
            self.result["errors"].append("timeout")
        poller.cancel()
        await self.pc.close()
        try:
            await self.call(self.session, {"janus": "destroy"})
        except (OSError, ValueError):
            pass
        return self.result

    async def publisher(self, started):
        """The id of the room's publisher, once there is one (it may be publishing again)."""
        while time.monotonic() - started < self.args.timeout:
            listed = await self.call(
                self.handle,
                {"janus": "message", "body": {"request": "listparticipants", "room": self.room}},
            )
            data = listed.get("plugindata", {}).get("data", {})
            if "error" in data:
                self.result["errors"].append(data["error"])
                return None
            for p in data.get("participants", []):
                if p.get("publisher"):
                    return p["id"]
            await asyncio.sleep(0.2)
        self.result["errors"].append("no publisher in the room")
        return None

    async def poll_events(self):
        """Keeps the session alive and hands its events to the viewer."""
        while True:
            try:
                for event in await asyncio.to_thread(poll, self.session):
                    await self.events.put(event)
            except (OSError, ValueError) as e:
                self.result["errors"].append(f"poll: {e}")
                await asyncio.sleep(1)

    async def wait_offer(self):
        deadline = time.monotonic() + self.args.timeout
        while time.monotonic() < deadline:
            try:
                event = await asyncio.wait_for(self.events.get(), deadline - time.monotonic())
            except asyncio.TimeoutError:
                break
            if event.get("janus") == "trickle":
                await self.trickle(event.get("candidate") or {})
            jsep = event.get("jsep")
            if jsep and jsep.get("type") == "offer":
                asyncio.ensure_future(self.trickles())
                return jsep["sdp"]
            data = event.get("plugindata", {}).get("data", {})
            if "error" in data:
                self.result["errors"].append(data["error"])
                return None
        self.result["errors"].append("Janus sent no offer")
        return None

    async def trickles(self):
        while True:
            event = await self.events.get()
            if event.get("janus") == "trickle":
                await self.trickle(event.get("candidate") or {})

    async def trickle(self, c):
        line = c.get("candidate")
        if not line:
            return
        candidate = candidate_from_sdp(line.split(":", 1)[1] if line.startswith("candidate:") else line)
        candidate.sdpMid = c.get("sdpMid")
        candidate.sdpMLineIndex = c.get("sdpMLineIndex")
        await self.pc.addIceCandidate(candidate)

    async def count(self, track, started):
        if track.kind != "video":
            return
        r = self.result
        first = None
        last = None
        gap = 0.0
        try:
            while True:
                frame = await track.recv()
                now = time.monotonic()
                r["frames"] += 1
                r["width"], r["height"] = frame.width, frame.height
                if first is None:
                    first = now
                    r["first_frame_s"] = round(now - started, 2)
                    # For whoever waits until every viewer sees the picture.
                    print(f"first frame: viewer {self.number}", file=sys.stderr, flush=True)
                if last is not None:
                    gap = max(gap, now - last)
                last = now
                watched = now - first
                if r["frames"] >= self.args.frames and watched >= self.args.seconds:
                    break
        except Exception as e:  # the track ended
            r["errors"].append(f"track: {e}")
        if first is not None and last is not None and last > first:
            r["fps"] = round((r["frames"] - 1) / (last - first), 1)
            r["longest_gap_ms"] = round(gap * 1000)
        self.done.set()



def negotiated(answer):
    """The video codec an answer took: the first format of its video section."""
    video = False
    for line in answer.splitlines():
        if line.startswith("m="):
            video = line.startswith("m=video") and not line.startswith("m=video 0 ")
        elif video and line.startswith("a=rtpmap:"):
            return line.split(" ", 1)[1]
    return None


async def run(args):
    # Every viewer keeps a long poll open on a thread of its own, and makes its requests on
    # others: the default pool (a few threads per core) would leave later viewers waiting.
    asyncio.get_running_loop().set_default_executor(
        concurrent.futures.ThreadPoolExecutor(max_workers=3 * args.viewers + 4)
    )
    viewers = [Viewer(args.url.rstrip("/"), args.room, args, n) for n in range(args.viewers)]
    started = time.monotonic()
    results = await asyncio.gather(*(v.run() for v in viewers), return_exceptions=True)
    out = []
    for r in results:
        if isinstance(r, Exception):
            out.append({"frames": 0, "errors": [f"{type(r).__name__}: {r}"]})
        else:
            out.append(r)
    ok = all(
        r["frames"] >= args.frames and (args.seconds == 0 or "fps" in r) and not r.get("errors")
        for r in out
    )
    print(json.dumps({"viewers": out, "seconds": round(time.monotonic() - started, 2)}), flush=True)
    return 0 if ok else 1


def main():
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("--room", type=int, default=1234)
    p.add_argument("--viewers", type=int, default=1)
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--seconds", type=float, default=0)
    p.add_argument("--timeout", type=float, default=30)
    sys.exit(asyncio.run(run(p.parse_args())))


if __name__ == "__main__":
    main()
