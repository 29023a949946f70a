"""IP cameras on loopback for the tests: an MJPEG-over-HTTP endpoint and an RTSP (H.264) one.

Both are real servers on 127.0.0.1 that OpenCV's FFmpeg backend reads as it reads
a camera: :class:`MjpegServer` answers ``GET`` with ``multipart/x-mixed-replace``
JPEG frames (what Axis, Hikvision and most IP cameras serve at ``/mjpg/video.mjpg``);
:class:`RtspServer` answers OPTIONS, DESCRIBE, SETUP and PLAY and sends H.264 in RTP
over the RTSP connection (interleaved TCP), packetised per RFC 6184 from an Annex B
stream that the ``ffmpeg`` program encodes.  Each can go away (:meth:`stop`: the
listener and every connection closed) and come back on the same port
(:meth:`start`), or stall (:meth:`stall`: connections stay open, nothing more is sent).
"""

from __future__ import annotations

import base64
import contextlib
import shutil
import socket
import socketserver
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
    block_on_close = False


class StreamServer:
    """A loopback server whose handler streams :attr:`frames`; it can stop, restart and stall."""

    path = "/"

    def __init__(self, fps: float = 12.0) -> None:
        self.fps = fps
        self.port = 0
        self.connections = 0
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stalled = threading.Event()
        self._stopped = threading.Event()
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        raise NotImplementedError

    def start(self) -> None:
        """Listen (on the port of the last run, if any) and serve in a thread."""
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                with outer._lock:
                    outer.connections += 1
                    outer._sockets.append(self.request)
                stalled = outer._stalled
                # OSError: the client went away, or stop() closed the socket.
                with contextlib.suppress(OSError):
                    outer.serve(self.request, stalled)

        self._stopped.clear()
        self._stalled = threading.Event()
        self._server = _Server(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Go away: stop listening and close every connection."""
        self._stopped.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            for s in self._sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self._sockets.clear()

    def stall(self) -> None:
        """Stop sending on the open connections and keep them open; new ones are served."""
        self._stalled.set()
        self._stalled = threading.Event()

    def pace(self, stalled: threading.Event) -> bool:
        """Wait one frame interval; False once the server stops. A stalled connection waits."""
        time.sleep(1 / self.fps)
        while stalled.is_set() and not self._stopped.is_set():
            time.sleep(0.05)
        return not self._stopped.is_set()

    def serve(self, conn: socket.socket, stalled: threading.Event) -> None:
        raise NotImplementedError


class MjpegServer(StreamServer):
    """``GET /video.mjpg``: JPEG frames as ``multipart/x-mixed-replace``, looping."""

    path = "/video.mjpg"

    def __init__(self, frames: Sequence[np.ndarray], fps: float = 12.0) -> None:
        super().__init__(fps)
        self.frames = frames

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    @property
    def frames(self) -> list[bytes]:
        return self._jpegs

    @frames.setter
    def frames(self, images: Sequence[np.ndarray]) -> None:
        self._jpegs = [
            cv2.imencode(".jpg", im, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes() for im in images
        ]

    def serve(self, conn: socket.socket, stalled: threading.Event) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = conn.recv(4096)
            if not chunk:
                return
            request += chunk
        conn.sendall(
            b"HTTP/1.0 200 OK\r\nServer: test-camera\r\nCache-Control: no-cache\r\n"
            b"Content-Type: multipart/x-mixed-replace; boundary=myboundary\r\n\r\n"
        )
        frames = self._jpegs
        for i in range(10**6):
            jpeg = frames[i % len(frames)]
            conn.sendall(
                b"--myboundary\r\nContent-Type: image/jpeg\r\n"
                + f"Content-Length: {len(jpeg)}\r\n\r\n".encode()
                + jpeg
                + b"\r\n"
            )
            if not self.pace(stalled):
                return


# -- RTSP -------------------------------------------------------------------------------


def ffmpeg() -> str | None:
    """The ``ffmpeg`` program, if installed (``make deps`` installs it)."""
    return shutil.which("ffmpeg")


def encode_h264(frames: Sequence[np.ndarray], fps: float, workdir: Path) -> bytes:
    """``frames`` as an H.264 Annex B stream (baseline, a key frame every 6 frames)."""
    exe = ffmpeg()
    assert exe is not None
    h, w = frames[0].shape[:2]
    raw = b"".join(np.ascontiguousarray(f).tobytes() for f in frames)
    out = workdir / "stream.h264"
    subprocess.run(
        [
            exe,
            "-loglevel",
            "error",
            "-y",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "bgr24",
            "-s",
            f"{w}x{h}",
            "-r",
            str(fps),
            "-i",
            "-",
            "-c:v",
            "libx264",
            "-profile:v",
            "baseline",
            "-pix_fmt",
            "yuv420p",
            "-g",
            "6",
            "-bf",
            "0",
            "-x264-params",
            "repeat-headers=1",
            "-f",
            "h264",
            str(out),
        ],
        input=raw,
        check=True,
        timeout=120,
    )
    return out.read_bytes()


def nal_units(stream: bytes) -> Iterator[bytes]:
    """The NAL units of an Annex B stream, start codes removed."""
    starts = []
    i = 0
    while (i := stream.find(b"\x00\x00\x01", i)) != -1:
        starts.append(i + 3)
        i += 3
    for n, start in enumerate(starts):
        end = starts[n + 1] - 3 if n + 1 < len(starts) else len(stream)
        yield stream[start:end].rstrip(b"\x00")


def access_units(stream: bytes) -> list[list[bytes]]:
    """NAL units grouped by picture: a new picture starts at each slice whose first_mb is 0."""
    units: list[list[bytes]] = []
    current: list[bytes] = []
    for nal in nal_units(stream):
        kind = nal[0] & 0x1F
        if kind in (1, 5) and nal[1] & 0x80 and any(n[0] & 0x1F in (1, 5) for n in current):
            units.append(current)
            current = []
        current.append(nal)
    if current:
        units.append(current)
    return units


class RtspServer(StreamServer):
    """``rtsp://127.0.0.1:PORT/live``: H.264 over RTP interleaved in the RTSP connection."""

    path = "/live"

    def __init__(self, frames: Sequence[np.ndarray], workdir: Path, fps: float = 12.0) -> None:
        super().__init__(fps)
        self.workdir = workdir
        self.frames = frames

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}{self.path}"

    @property
    def frames(self) -> list[list[bytes]]:
        return self._units

    @frames.setter
    def frames(self, images: Sequence[np.ndarray]) -> None:
        self._units = access_units(encode_h264(images, self.fps, self.workdir))
        nals = [n for unit in self._units for n in unit]
        sps = next(n for n in nals if n[0] & 0x1F == 7)
        pps = next(n for n in nals if n[0] & 0x1F == 8)
        self._sprop = f"{base64.b64encode(sps).decode()},{base64.b64encode(pps).decode()}"
        self._profile = sps[1:4].hex()

    def _sdp(self) -> bytes:
        return (
            "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=test camera\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n"
            "a=control:*\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
            f"a=fmtp:96 packetization-mode=1;profile-level-id={self._profile};"
            f"sprop-parameter-sets={self._sprop}\r\na=control:track0\r\n"
        ).encode()

    def serve(self, conn: socket.socket, stalled: threading.Event) -> None:
        buf = b""
        session = "4711"
        while True:
            while b"\r\n\r\n" not in buf:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                buf += chunk
            head, _, buf = buf.partition(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method = lines[0].split(" ", 1)[0]
            headers = {
                k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])
            }
            cseq = headers.get("cseq", "0")
            extra = ""
            body = b""
            if method == "OPTIONS":
                extra = "Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN\r\n"
            elif method == "DESCRIBE":
                body = self._sdp()
                extra = f"Content-Base: {self.url}/\r\nContent-Type: application/sdp\r\n"
            elif method == "SETUP":
                if "TCP" not in headers.get("transport", ""):
                    conn.sendall(
                        f"RTSP/1.0 461 Unsupported Transport\r\nCSeq: {cseq}\r\n\r\n".encode()
                    )
                    continue
                extra = f"Transport: RTP/AVP/TCP;unicast;interleaved=0-1\r\nSession: {session}\r\n"
            elif method == "PLAY":
                conn.sendall(
                    f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\nSession: {session}\r\n\r\n".encode()
                )
                self._play(conn, stalled)
                return
            elif method == "TEARDOWN":
                conn.sendall(f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n\r\n".encode())
                return
            length = f"Content-Length: {len(body)}\r\n" if body else ""
            conn.sendall(f"RTSP/1.0 200 OK\r\nCSeq: {cseq}\r\n{extra}{length}\r\n".encode() + body)

    def _play(self, conn: socket.socket, stalled: threading.Event) -> None:
        seq = 0
        units = self._units
        # Start at a key frame, as a camera does for a new client.
        for i in range(10**6):
            unit = units[i % len(units)]
            stamp = int(i * 90000 / self.fps) & 0xFFFFFFFF
            for n, nal in enumerate(unit):
                last = n == len(unit) - 1
                for payload, end in _fragments(nal):
                    marker = 0x80 if (last and end) else 0
                    rtp = (
                        bytes([0x80, marker | 96])
                        + seq.to_bytes(2, "big")
                        + stamp.to_bytes(4, "big")
                    )
                    rtp += b"\x00\x00\x12\x34" + payload
                    conn.sendall(b"$\x00" + len(rtp).to_bytes(2, "big") + rtp)
                    seq = (seq + 1) & 0xFFFF
            if not self.pace(stalled):
                return


def _fragments(nal: bytes, mtu: int = 1400) -> Iterator[tuple[bytes, bool]]:
    """RTP payloads for one NAL unit: itself, or FU-A fragments (RFC 6184 5.8)."""
    if len(nal) <= mtu:
        yield nal, True
        return
    header, body = nal[0], nal[1:]
    indicator = (header & 0xE0) | 28
    kind = header & 0x1F
    for start in range(0, len(body), mtu):
        chunk = body[start : start + mtu]
        first, end = start == 0, start + mtu >= len(body)
        fu = kind | (0x80 if first else 0) | (0x40 if end else 0)
        yield bytes([indicator, fu]) + chunk, end


def video_frames(images: Sequence[np.ndarray], repeat: int) -> list[Any]:
    """Each image ``repeat`` times: a carton standing in view for that many frames."""
    return [im for im in images for _ in range(repeat)]
