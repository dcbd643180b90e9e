"""A viewer of the camera made with aiortc (a Python WebRTC stack whose DTLS speaks only
ECDSA cipher suites), speaking the nextRTC protocol over a WebSocket.

    viewer.py URL [--conversation camera] [--frames 60] [--timeout 30]
    viewer.py URL --mangle-fingerprint [--wait 12]
    viewer.py URL --talk SECONDS [--tone 700]

It joins the camera's conversation, answers the camera's offer, and prints one JSON line:
- viewing (the default): the frames it decoded and their size; exit 0 once `--frames`
  frames were decoded, 1 otherwise.
- `--mangle-fingerprint`: it changes the DTLS fingerprint of the camera's offer before
  applying it, so its own check of the camera's certificate fails and it gives up on the
  connection (closing its peer connection, as a client does) while it stays in the
  conversation for `--wait` seconds: the line says how far its DTLS got and what the camera
  told it; exit 0 when its DTLS failed (as it must), 1 otherwise.
- `--talk`: it answers the camera's sound section with a track of its own, a sine tone of
  `--tone` Hz, and once it decodes video asks the camera for the floor (`talk` `start`),
  holds it for SECONDS and lets go (`talk` `stop`); the line adds every `talk` the camera
  sent (`talk`); exit 0 when it decoded `--frames` frames and the camera said `on`.
"""

import argparse
import asyncio
import fractions
import json
import math
import re
import sys
import time
from array import array

import av
import websockets
from aiortc import MediaStreamTrack, RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import candidate_from_sdp

RATE = 48000
SAMPLES = 960  # 20 ms


class Tone(MediaStreamTrack):
    """A sine tone, 48 kHz mono, in 20 ms frames at the pace of a microphone."""

    kind = "audio"

    def __init__(self, hz):
        super().__init__()
        self.hz = hz
        self.sent = 0
        self.start = None

    async def recv(self):
        if self.start is None:
            self.start = time.monotonic()
        else:
            wait = self.start + self.sent / RATE - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        pcm = array(
            "h",
            (
                int(8000 * math.sin(2 * math.pi * self.hz * (self.sent + i) / RATE))
                for i in range(SAMPLES)
            ),
        )
        frame = av.AudioFrame(format="s16", layout="mono", samples=SAMPLES)
        frame.planes[0].update(pcm.tobytes())
        frame.sample_rate = RATE
        frame.pts = self.sent
        frame.time_base = fractions.Fraction(1, RATE)
        self.sent += SAMPLES
        return frame


def envelope(signal, to="", content="", custom=None):
    return json.dumps(
        {"from": "", "to": to, "signal": signal, "content": content, "custom": custom or {}}
    )


def mangle(sdp):
    """The offer with the first hex digit of every sha-256 fingerprint changed."""

    def flip(m):
        first = m.group(2)
        return m.group(1) + ("0" if first != "0" else "1") + m.group(3)

    return re.sub(r"(a=fingerprint:sha-256 )([0-9A-Fa-f])(.*)", flip, sdp)


async def add_candidate(pc, content):
    try:
        c = json.loads(content)
    except ValueError:
        return
    line = c.get("candidate") or ""
    if not line:
        return
    candidate = candidate_from_sdp(line.split(":", 1)[1] if line.startswith("candidate:") else line)
    candidate.sdpMid = c.get("sdpMid")
    candidate.sdpMLineIndex = c.get("sdpMLineIndex")
    await pc.addIceCandidate(candidate)


async def run(args):
    result = {"frames": 0, "width": None, "height": None, "errors": []}
    if args.talk:
        result["talk"] = []
    camera = {}
    pc = RTCPeerConnection()
    done = asyncio.Event()
    states = []

    @pc.on("connectionstatechange")
    async def on_state():
        states.append(pc.connectionState)
        if pc.connectionState == "failed":
            done.set()

    @pc.on("track")
    def on_track(track):
        if track.kind != "video":
            return

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
    async with websockets.connect(args.url, max_size=1 << 20) as ws:
        await ws.send(envelope("join", content=args.conversation))

        async def signaling():
            async for raw in ws:
                m = json.loads(raw)
                signal, sender = m.get("signal"), m.get("from")
                if signal == "answerRequest":
                    camera["id"] = sender
                    offer = m.get("content") or ""
                    if args.mangle_fingerprint:
                        offer = mangle(offer)
                    await pc.setRemoteDescription(RTCSessionDescription(sdp=offer, type="offer"))
                    if args.talk:
                        pc.addTrack(Tone(args.tone))
                    await pc.setLocalDescription(await pc.createAnswer())
                    await ws.send(envelope("answerResponse", to=sender, content=pc.localDescription.sdp))
                elif signal == "candidate":
                    await add_candidate(pc, m.get("content") or "")
                elif signal == "error":
                    result["errors"].append(
                        {"code": m.get("content"), "message": (m.get("custom") or {}).get("message")}
                    )
                    if not args.mangle_fingerprint:
                        done.set()
                elif signal == "talk":
                    result["talk"].append(
                        {"state": m.get("content"), "message": (m.get("custom") or {}).get("message")}
                    )
                elif signal in ("left", "end"):
                    result["errors"].append(signal)

        reader = asyncio.ensure_future(signaling())
        if args.mangle_fingerprint:
            # Its DTLS fails once the handshake is over; then it gives up on the connection
            # and stays in the conversation, listening.
            try:
                await asyncio.wait_for(done.wait(), args.wait)
            except asyncio.TimeoutError:
                pass
            failed_at = time.monotonic()
            await pc.close()
            deadline = started + args.wait
            while time.monotonic() < deadline and not any(
                isinstance(e, dict) and e["code"] == "NEGOTIATION_FAILED" for e in result["errors"]
            ):
                await asyncio.sleep(0.1)
            result["gave_up_after_s"] = round(failed_at - started, 2)
        else:
            if args.talk:
                deadline = started + args.timeout
                while result["frames"] == 0 and time.monotonic() < deadline:
                    await asyncio.sleep(0.05)
                await ws.send(envelope("talk", to=camera.get("id", ""), content="start"))
                await asyncio.sleep(args.talk)
                await ws.send(envelope("talk", to=camera.get("id", ""), content="stop"))
                await asyncio.sleep(1)
            try:
                await asyncio.wait_for(done.wait(), args.timeout)
            except asyncio.TimeoutError:
                result["errors"].append("timeout")
        reader.cancel()
    await pc.close()
    result["states"] = states
    result["seconds"] = round(time.monotonic() - started, 2)
    print(json.dumps(result), flush=True)
    if args.mangle_fingerprint:
        return 0 if "failed" in states and "connected" not in states else 1
    if args.talk and not any(t["state"] == "on" for t in result["talk"]):
        return 1
    return 0 if result["frames"] >= args.frames else 1


def main():
    p = argparse.ArgumentParser()
    p.add_argument("url")
    p.add_argument("--conversation", default="camera")
    p.add_argument("--frames", type=int, default=60)
    p.add_argument("--timeout", type=float, default=30)
    p.add_argument("--mangle-fingerprint", action="store_true")
    p.add_argument("--wait", type=float, default=12)
    p.add_argument("--talk", type=float, default=0)
    p.add_argument("--tone", type=float, default=700)
    sys.exit(asyncio.run(run(p.parse_args())))


if __name__ == "__main__":
    main()
