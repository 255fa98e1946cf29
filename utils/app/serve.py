"""The live view (``inference.py --serve [HOST:]PORT``): a web page with the annotated frames as MJPEG,
the current detections, frames per second, stage times and the device's events.

aiohttp serves it from its own thread and event loop; the detection loop only hands over its latest
result. Frames are JPEG-encoded once, by an encoder thread and only while someone watches, at most
``MAX_FPS`` a second; each viewer gets the newest frame when it is ready for one, so a slow or
stalled viewer drops frames (its own only) and never holds up the pipeline or the other viewers.
Beyond localhost every request needs the token (401 without it).
"""
from __future__ import annotations

import asyncio
import collections
import errno
import hmac
import ipaddress
import json
import logging
import re
import secrets
import socket
import sys
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from utils.app.result import FrameResult
from utils.errors import UserError

MAX_FPS = 15           # frames a second to the viewers: enough to watch, bounded CPU on a Pi
STATE_INTERVAL = 0.2   # seconds between two state updates to one viewer
JPEG_QUALITY = 80
PAGE = Path(__file__).with_name("live.html")


@dataclass(frozen=True)
class Address:
    host: str
    port: int
    text: str  # as the user wrote it, for messages

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def parse_address(text: str) -> Address:
    """``8080``, ``0.0.0.0:8080``, ``[::]:8080`` or ``name:8080`` (127.0.0.1 when no host is given)."""
    match = re.fullmatch(r"(?:\[([0-9a-fA-F:.]+)\]|([^:\[\]]*)):(\d+)|(\d+)", text.strip())
    if match is None:
        raise UserError(f"--serve {text}: give [HOST:]PORT, such as 8080, 0.0.0.0:8080 or [::]:8080")
    host = match.group(1) or match.group(2) or "127.0.0.1"
    port = int(match.group(3) or match.group(4))
    if port > 65535:
        raise UserError(f"--serve {text}: port {port} is out of range (0 to 65535; 0 picks a free one)")
    return Address(host, port, text)


def bind(address: Address) -> socket.socket:
    """A listening socket on ``address``, or a one-line ``UserError`` saying why not."""
    try:
        infos = socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise UserError(f"--serve {address.text}: host {address.host} cannot be resolved ({error.strerror})") from None
    family, _, _, _, sockaddr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart need not wait for TIME_WAIT
        sock.bind(sockaddr)
        sock.listen(64)
    except OSError as error:
        sock.close()
        raise UserError(f"--serve {address.text}: {_bind_problem(address, error)}") from None
    sock.setblocking(False)
    return sock


def _bind_problem(address: Address, error: OSError) -> str:
    if error.errno == errno.EADDRINUSE:
        return f"port {address.port} is in use by another program; choose another port (0 picks a free one)"
    if error.errno == errno.EACCES:
        return (f"port {address.port} is privileged and this user may not bind it; choose a port from 1024 up "
                "(or give the program that right)")
    if error.errno == errno.EADDRNOTAVAIL:
        return f"{address.host} is not an address of this machine"
    return f"cannot listen there ({error.strerror or error})"


class LiveView:
    """An output (``write``/``close``) that serves the run on a web page; see the module docstring.

    The socket is bound at construction (bad input fails before the model loads); ``start`` begins
    serving. ``token``: None makes one when binding beyond localhost (printed at start); "" there is
    refused. ``event`` takes device and stream lines for the page."""

    def __init__(self, address: Address, token: str | None, source: str, say=None):
        if not address.loopback and token is not None and not token.strip():
            raise UserError(f"--serve {address.text}: binds beyond this machine, so it needs a token: give a "
                            "non-empty --serve-token, or leave it out and one is made and printed")
        self.address, self.source = address, source  # the source as messages name it (masked)
        self.token = token if token else (None if address.loopback else secrets.token_urlsafe(16))
        self.say = say or (lambda line: print(line, file=sys.stderr, flush=True))
        self.sock = bind(address)
        self.port = self.sock.getsockname()[1]
        self.viewers = 0            # open MJPEG streams
        self.watchers = 0           # open state streams
        self.lock = threading.Lock()
        self.model, self.last, self.frames = "", None, 0  # the page's state is made from these when asked
        self.recent: collections.deque = collections.deque(maxlen=30)   # (time, pre, invoke, post)
        self.events: collections.deque = collections.deque(maxlen=20)
        self.latest: np.ndarray | None = None
        self.due = 0.0  # when the viewers may have the next frame
        self.device = "CPU"
        self.image_ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None
        self.encoder: threading.Thread | None = None
        self.ended = False
        self.closed = False

    # --- the detection loop's side -------------------------------------------------------------

    def start(self, model: str = "", device: str = "CPU") -> None:
        """Serve; ``model`` and ``device`` name what runs (a frame's own device, when it has one, wins)."""
        self.model, self.device = model, device
        ready = threading.Event()
        self.thread = threading.Thread(target=self._serve, args=(ready,), daemon=True, name="live-view")
        self.thread.start()
        ready.wait(10)
        self.encoder = threading.Thread(target=self._encode, daemon=True, name="live-view-encoder")
        self.encoder.start()
        self.say(f"live view: {self.url()}" + ("" if self.address.loopback else
                                              f" (listening on {self.address.host}:{self.port}; every request needs the token)"))

    def url(self) -> str:
        host = self.address.host
        if not self.address.loopback and host in ("0.0.0.0", "::", ""):
            host = socket.gethostname()
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}/" + (f"?token={urllib.parse.quote(self.token, safe='')}" if self.token else "")

    def write(self, result: FrameResult) -> None:
        now = time.monotonic()
        timing = result.timing
        with self.lock:  # the state itself is made only when a viewer asks (_state_now), not per frame
            self.recent.append((now, timing.pre, timing.invoke, timing.post))
            self.last, self.frames = result, self.frames + 1
        if self.viewers and now >= self.due:  # drawn and handed over at most MAX_FPS times a second
            self.due = now + 1 / MAX_FPS
            self.latest = result.annotated
            self.image_ready.set()
        if self.watchers:
            self._notify(self._state_changed)

    def event(self, line: str) -> None:
        with self.lock:
            self.events.append(f"{time.strftime('%H:%M:%S')} {line}")
        self._notify(self._state_changed)

    def close(self, keep: bool = True) -> None:
        """End every stream properly (the page says the source ended), then stop the server: at most
        about 2 s, however the viewers behave."""
        if self.closed:
            return
        self.closed, self.ended = True, True
        self.image_ready.set()
        if self.loop is not None and self.thread is not None:
            try:
                asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(timeout=3)
            except Exception:  # noqa: BLE001 - a server that does not stop in time is left to the daemon thread
                pass
            self.thread.join(timeout=1)
        if self.encoder is not None:
            self.encoder.join(timeout=1)
        self.sock.close()

    def _notify(self, which: str) -> None:
        loop = self.loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._wake, which)
            except RuntimeError:  # the loop closed meanwhile
                pass

    def _encode(self) -> None:
        """Encode each frame handed over (at most MAX_FPS a second, only while anyone watches)."""
        while not self.ended:
            if not self.image_ready.wait(0.5):
                continue
            self.image_ready.clear()
            image = self.latest
            if image is None or self.ended:
                continue
            ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            if ok and self.loop is not None:
                self._jpeg_pending = jpeg.tobytes()
                self._notify(self._frame_changed)

    # --- the server's side (its own thread and event loop) -------------------------------------

    _frame_changed, _state_changed = "frame", "state"
    _jpeg_pending: bytes | None = None

    def _serve(self, ready: threading.Event) -> None:
        from aiohttp import web

        logging.getLogger("aiohttp").setLevel(logging.CRITICAL)  # our lines only; a viewer's error is not the run's
        self.loop = loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self.changed = {self._frame_changed: asyncio.Event(), self._state_changed: asyncio.Event()}
        self.jpeg, self.jpeg_number, self.handlers = b"", 0, set()
        @web.middleware
        async def check_token(request, handler):
            return await self._check_token(request, handler)

        app = web.Application(middlewares=[check_token])
        app.router.add_get("/", self._page)
        app.router.add_get("/stream.mjpg", self._stream)
        app.router.add_get("/events", self._events)
        app.router.add_get("/state.json", self._state)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        loop.run_until_complete(self.runner.setup())
        loop.run_until_complete(web.SockSite(self.runner, self.sock).start())
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    def _wake(self, which: str) -> None:
        if which == self._frame_changed and self._jpeg_pending is not None:
            self.jpeg, self.jpeg_number = self._jpeg_pending, self.jpeg_number + 1
        old, self.changed[which] = self.changed[which], asyncio.Event()
        old.set()

    async def _check_token(self, request, handler):
        from aiohttp import web

        if self.token is not None:
            given = request.query.get("token", "")
            header = request.headers.get("Authorization", "")
            if header.startswith("Bearer "):
                given = header[7:]
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                return web.Response(status=401, text="401 Unauthorized: open the URL with the token that "
                                    "inference.py printed (?token=...)\n", headers={"WWW-Authenticate": "Bearer"})
        return await handler(request)

    async def _page(self, request):
        from aiohttp import web

        return web.Response(text=PAGE.read_text(), content_type="text/html", headers={"Cache-Control": "no-store"})

    async def _state(self, request):
        from aiohttp import web

        return web.json_response(self._state_now(), headers={"Cache-Control": "no-store"})

    def _state_now(self) -> dict:
        """What the page shows: the newest frame's detections, fps and mean stage times of the last 30
        frames, the device, the events."""
        with self.lock:
            last, frames, recent, events, ended = self.last, self.frames, list(self.recent), list(self.events), self.ended
        span = recent[-1][0] - recent[0][0] if recent else 0.0
        return {"source": self.source, "model": self.model, "frame": last.frame.index if last else None,
                "frames": frames, "fps": round((len(recent) - 1) / span, 1) if span > 0 else 0.0,
                "ms": {stage: round(float(np.mean([r[i] for r in recent])), 2)
                       for i, stage in ((1, "pre"), (2, "invoke"), (3, "post"))} if recent else {},
                "device": (last.timing.device if last else None) or self.device,
                "detections": last.detections.to_record(last.names) if last else [],
                "events": events, "viewers": self.viewers, "ended": ended}

    async def _stream(self, request):
        """MJPEG: the newest frame each time this viewer is ready for one."""
        from aiohttp import web

        response = web.StreamResponse(headers={"Content-Type": "multipart/x-mixed-replace; boundary=frame",
                                               "Cache-Control": "no-store"})
        await response.prepare(request)
        self.handlers.add(asyncio.current_task())
        self.viewers += 1
        sent = 0
        try:
            while not self.ended:
                if self.jpeg_number == sent:
                    await self.changed[self._frame_changed].wait()
                    continue
                sent, jpeg = self.jpeg_number, self.jpeg
                await response.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n%s\r\n"
                                     % (len(jpeg), jpeg))
            await asyncio.wait_for(response.write(b"--frame--\r\n"), 1.0)
        except (ConnectionError, asyncio.TimeoutError):  # the viewer went away or stalled at the end
            pass
        finally:
            self.viewers -= 1
            self.handlers.discard(asyncio.current_task())
        return response

    async def _events(self, request):
        """Server-sent events: the state, at most every STATE_INTERVAL seconds, the last one with ``ended``."""
        from aiohttp import web

        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
        await response.prepare(request)
        self.handlers.add(asyncio.current_task())
        self.watchers += 1
        try:
            while True:
                changed = self.changed[self._state_changed]
                state = self._state_now()
                await response.write(f"data: {json.dumps(state)}\n\n".encode())
                if state["ended"]:
                    break
                await asyncio.sleep(STATE_INTERVAL)
                if not self.ended:
                    await changed.wait()
        except (ConnectionError, asyncio.TimeoutError):
            pass
        finally:
            self.watchers -= 1
            self.handlers.discard(asyncio.current_task())
        return response

    async def _shutdown(self) -> None:
        for which in (self._frame_changed, self._state_changed):
            self._wake(which)
        handlers = set(self.handlers)
        if handlers:
            _, late = await asyncio.wait(handlers, timeout=1.0)
            for task in late:  # a stalled viewer: its write never completes
                task.cancel()
        await self.runner.cleanup()
        self.loop.call_soon(self.loop.stop)
