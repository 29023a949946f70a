"""Frame capture for the camera source: devices, network streams, files, and the thread that reads them.

* :func:`open_capture` opens a ``device`` value as the right :class:`Capture`: a V4L2
  device, an RTSP or HTTP (MJPEG) stream through OpenCV's FFmpeg backend, a video
  file, or a folder of images (or one image);
* :class:`CaptureThread` reads frames as fast as the device delivers them into a
  :class:`LatestFrame` slot (a frame replaced before the decoder took it is
  *dropped* and counted, never queued), reopens a live stream that fails with
  capped exponential backoff (the kernel's one rule,
  :func:`~scanner_agent.kernel.backoff_delay`), and watches for a stream that stays
  connected but stops delivering (see its docstring);
* :class:`ScriptedCapture` is the in-memory fake camera the tests use.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from drivers.ipcam import STREAM_TIMEOUT_MS, open_stream, safe_url
from scanner_agent.kernel import DeviceDisconnected, DeviceUnavailable, backoff_delay, utc_now

if TYPE_CHECKING:
    from numpy.typing import NDArray

    Image = NDArray[Any]
    """An OpenCV frame: 8-bit grayscale (h, w) or BGR (h, w, 3)."""
else:
    Image = Any

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".pgm"})
# -- frames and captures -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Frame:
    """One captured frame."""

    index: int
    """Position in the stream since the source started (files: in the file)."""
    t: float
    """Seconds on the stream's clock: monotonic for live devices, video time for files."""
    image: Image
    at: datetime = field(default_factory=utc_now)
    """Capture wall-clock time (becomes the scan's ``scanned_at``)."""


class Capture(Protocol):
    """An open frame source, as the capture thread sees it."""

    live: bool
    """True for devices and streams (drop frames, reconnect); False for files."""
    rate: float
    """Frames per second of the material (files), used for video time; 0 if unknown."""

    def read(self) -> Image | None:
        """The next frame; ``None`` at the end of a file.

        Raises:
            DeviceDisconnected: a live stream stopped delivering.
        """
        ...

    def close(self) -> None:
        """Release the device."""
        ...


def device_kind(device: str) -> str:
    """``v4l2``, ``stream``, ``folder``, ``image`` or ``video`` for a ``device`` value."""
    if device.isdigit() or device.startswith("/dev/video"):
        return "v4l2"
    if "://" in device:
        return "stream"
    path = Path(device)
    if path.is_dir() or device.endswith("/"):
        return "folder"
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return "image"
    return "video"


class VideoCapture:
    """A cv2.VideoCapture on a V4L2 device, a stream URL or a video file."""

    def __init__(
        self,
        device: str,
        *,
        width: int = 0,
        height: int = 0,
        fps: float = 0.0,
        timeout_ms: int = STREAM_TIMEOUT_MS,
    ) -> None:
        import cv2

        self.device = device
        kind = device_kind(device)
        self.live = kind in ("v4l2", "stream")
        if kind == "v4l2":
            index = int(device) if device.isdigit() else device
            cap = cv2.VideoCapture(index, cv2.CAP_V4L2)
        elif kind == "stream":
            cap = open_stream(device, timeout_ms)
        else:
            if not Path(device).is_file():
                raise DeviceUnavailable(
                    f"Failed to open {device!r} as a video: no such file", device=device
                )
            cap = cv2.VideoCapture(device)
        if not cap.isOpened():
            cap.release()
            raise DeviceUnavailable(
                f"Failed to open {safe_url(device)!r} as a camera: OpenCV could not open it",
                device=safe_url(device),
            )
        if self.live:
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the latest frame, not a backlog
            if width:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
            if height:
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
            if fps:
                cap.set(cv2.CAP_PROP_FPS, fps)
        self.rate = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self._cap = cap

    def read(self) -> Image | None:
        ok, image = self._cap.read()
        if ok and image is not None:
            return image
        if self.live:
            raise DeviceDisconnected(
                f"Failed to read {safe_url(self.device)!r} as a camera: no frame",
                device=safe_url(self.device),
            )
        return None

    def close(self) -> None:
        self._cap.release()


class ImageFolder:
    """The images of a folder (sorted by name), or one image file, as frames."""

    live = False
    rate = 0.0

    def __init__(self, device: str) -> None:
        path = Path(device)
        if path.is_dir():
            self.paths = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.is_file():
            self.paths = [path]
        else:
            raise DeviceUnavailable(
                f"Failed to open {device!r} as images: no such file or folder", device=device
            )
        self.device = device
        self._next = 0
        self.current: Path | None = None
        """The file of the frame last returned."""

    def read(self) -> Image | None:
        import cv2

        while self._next < len(self.paths):
            path = self.paths[self._next]
            self._next += 1
            image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            if image is not None and image.dtype.name == "uint8":
                self.current = path
                return image
            log.warning("%s: skipping %s: not an 8-bit image OpenCV can read", self.device, path)
        return None

    def close(self) -> None:
        self._next = len(self.paths)


class ScriptedCapture:
    """The fake camera: frames from a list; an exception in it is raised by ``read``.

    With ``live=True`` an exception plays a stream dropping (the source
    reconnects) and the end of the list is a stream that stops delivering.
    ``interval`` is the time between frames a real camera would take (0: none).
    """

    def __init__(
        self, frames: Iterable[Image | Exception], *, live: bool = False, interval: float = 0.0
    ) -> None:
        self.live = live
        self.rate = 0.0
        self.interval = interval
        self._frames = iter(frames)
        self.closed = False

    def read(self) -> Image | None:
        if self.interval:
            time.sleep(self.interval)
        item = next(self._frames, None)
        if isinstance(item, Exception):
            raise item
        if item is None and self.live:
            raise DeviceDisconnected("Failed to read scripted camera: no frame", device="script")
        return item

    def close(self) -> None:
        self.closed = True


def open_capture(
    device: str,
    *,
    width: int = 0,
    height: int = 0,
    fps: float = 0.0,
    timeout_ms: int = STREAM_TIMEOUT_MS,
) -> Capture:
    """Open ``device`` as the right kind of capture.

    Raises:
        DeviceUnavailable: it cannot be opened (absent, busy, not a video).
    """
    if device_kind(device) in ("folder", "image"):
        return ImageFolder(device)
    return VideoCapture(device, width=width, height=height, fps=fps, timeout_ms=timeout_ms)


# -- the latest-frame slot and the capture thread ----------------------------------


class LatestFrame:
    """A one-frame mailbox between the capture thread and the decoder.

    ``put`` replaces an untaken frame (counting it in :attr:`dropped`) unless
    the slot is ``lossless``, in which case it waits until the frame is taken.
    """

    def __init__(self, *, lossless: bool = False) -> None:
        self.lossless = lossless
        self.dropped = 0
        self._frame: Frame | None = None
        self._closed = False
        self._cond = threading.Condition()

    def put(self, frame: Frame) -> None:
        """Offer a frame (returns at once unless lossless and the slot is full)."""
        with self._cond:
            if self.lossless:
                while self._frame is not None and not self._closed:
                    self._cond.wait(0.5)
            elif self._frame is not None:
                self.dropped += 1
            self._frame = frame
            self._cond.notify_all()

    def take(self, timeout: float) -> Frame | None:
        """The latest frame, waiting up to ``timeout`` seconds; ``None`` if none came."""
        with self._cond:
            if self._frame is None and not self._closed:
                self._cond.wait(timeout)
            frame, self._frame = self._frame, None
            self._cond.notify_all()
            return frame

    def empty(self) -> bool:
        with self._cond:
            return self._frame is None

    def close(self) -> None:
        """Wake every waiter; ``put`` stops blocking."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class CaptureThread(threading.Thread):
    """Reads frames into a :class:`LatestFrame`, reopening a live stream that fails or stalls.

    A live stream is read by a reader thread of its own, one per connection, while
    this thread supervises it:

    * a read that fails (the camera went away, FFmpeg's read timeout) ends the
      connection; the stream is reopened after a backoff that starts at
      ``backoff_initial`` and doubles up to ``backoff_max`` (back to the start once a
      connection delivered frames);
    * the **stall watchdog**: a connection that delivers no frame for ``stall_s``
      seconds (a camera or NVR that keeps the socket open and sends nothing, or a
      read stuck in the backend) is given up: it is counted in :attr:`stalls`, the
      source shows ``connected = false`` with the reason, and a new connection is
      opened at once.  The stuck reader is left to finish on its own (a capture is
      only ever touched by the thread that opened it); whatever it returns is dropped;
    * the **stream clock** (:attr:`Frame.t`) does not run while the stream is down:
      the first frame after a reconnect follows the last one before it.  A code in
      view on both sides of an outage (a stopped line, a camera that replays its
      last frames) is one sighting for the duplicate filter, not a new scan.

    A file or folder is read once in this thread: at ``fps`` (0: as fast as the
    decoder takes frames).
    """

    def __init__(
        self,
        name: str,
        opener: Callable[[], Capture],
        slot: LatestFrame,
        *,
        live: bool,
        fps: float = 0.0,
        backoff_initial: float = 0.1,
        backoff_max: float = 5.0,
        stall_s: float = 0.0,
    ) -> None:
        super().__init__(name=f"capture-{name}", daemon=True)
        self.opener = opener
        self.slot = slot
        self.live = live
        self.fps = fps
        self.backoff_initial = min(backoff_initial, backoff_max)
        self.backoff_max = backoff_max
        self.stall_s = stall_s
        self.stopping = threading.Event()
        self.finished = threading.Event()
        """Set when a file has been read to its end (or the thread stopped)."""
        self.opened = threading.Event()
        """Set once the first open succeeded (or failed for good)."""
        self.fatal: BaseException | None = None
        """Why a file or folder could not be opened at all."""
        self.connected = False
        self.reason: str | None = None
        self.frames = 0
        self.reconnects = 0
        self.stalls = 0
        """Connections given up by the watchdog: open, but no frame for ``stall_s``."""
        self.io_errors = 0
        self.clock_offset = 0.0
        """Seconds the stream was down, taken off the stream clock."""
        self._index = 0
        self._generation = 0
        self._last_frame: float | None = None
        self._progress = 0.0
        self._delivered = False

    def run(self) -> None:
        try:
            if self.live:
                self._supervise()
            else:
                self._play_file()
        finally:
            self.opened.set()
            self.finished.set()
            self.slot.close()

    def _play_file(self) -> None:
        try:
            cap = self.opener()
        except Exception as exc:  # a missing file will not appear by retrying
            self.reason, self.fatal = str(exc), exc
            self.io_errors += 1
            return
        self.connected = True
        self.opened.set()
        try:
            rate = self.fps or cap.rate or 1.0
            start = time.monotonic()
            while not self.stopping.is_set():
                image = cap.read()
                if image is None:
                    return
                index = self._index
                if self.fps:  # pace a file like a camera: real time, with drops
                    self.stopping.wait(max(0.0, start + index / self.fps - time.monotonic()))
                self.frames += 1
                self.slot.put(Frame(index, index / rate, image))
                self._index += 1
        except Exception as exc:  # a backend fault mid-file
            self.reason = str(exc)
            self.io_errors += 1
            log.warning("%s: stopped reading: %s", self.name, exc)
        finally:
            self.connected = False
            with contextlib.suppress(Exception):
                cap.close()

    def _supervise(self) -> None:
        attempt = 0  # failed opens and lost connections since one last delivered frames
        while not self.stopping.is_set():
            delay = backoff_delay(attempt, self.backoff_initial, self.backoff_max)
            try:
                cap = self.opener()
            except Exception as exc:  # DeviceUnavailable, or a cv2.error from the backend
                self.reason = str(exc)
                self.io_errors += 1
                log.warning("%s: %s; retrying in %.1f s", self.name, exc, delay)
                self.opened.set()
                self.stopping.wait(delay)
                attempt += 1
                continue
            self._generation += 1
            generation = self._generation
            self.connected, self.reason, self._delivered = True, None, False
            self._progress = time.monotonic()
            self.opened.set()
            outcome: list[BaseException] = []
            reader = threading.Thread(
                target=self._read,
                args=(cap, generation, outcome),
                name=f"{self.name}-read",
                daemon=True,
            )
            reader.start()
            while reader.is_alive() and not self.stopping.is_set():
                reader.join(0.05)
                if self.stall_s and time.monotonic() - self._progress > self.stall_s:
                    self._generation += 1  # the reader's frames are not wanted any more
                    self.stalls += 1
                    self.reason = f"stalled: no frame for {self.stall_s:g} s"
                    log.warning("%s: %s; reconnecting", self.name, self.reason)
                    break
            self.connected = False
            if self.stopping.is_set():
                self._generation += 1
                return
            if outcome:
                self.reason = str(outcome[0])
                log.warning("%s: %s; reopening in %.1f s", self.name, outcome[0], delay)
            self.io_errors += 1
            self.reconnects += 1
            if self._delivered:
                attempt = 0  # it worked for a while: start again short
            self.stopping.wait(backoff_delay(attempt, self.backoff_initial, self.backoff_max))
            attempt += 1

    def _read(self, cap: Capture, generation: int, outcome: list[BaseException]) -> None:
        """One connection's reader: frames into the slot while it is the current one."""
        try:
            while generation == self._generation and not self.stopping.is_set():
                image = cap.read()
                if generation != self._generation:
                    return  # given up by the watchdog meanwhile: drop what came late
                if image is None:
                    raise DeviceDisconnected("the stream ended", device="stream")
                now = time.monotonic()
                if not self._delivered and self._last_frame is not None:
                    self.clock_offset += now - self._last_frame  # the outage, off the clock
                self._delivered = True
                self._last_frame = self._progress = now
                self.frames += 1
                self.slot.put(Frame(self._index, now - self.clock_offset, image))
                self._index += 1
        except Exception as exc:  # DeviceDisconnected, or a backend fault mid-stream
            outcome.append(exc)
        finally:
            with contextlib.suppress(Exception):
                cap.close()

    def stop(self, timeout: float = 2.0) -> None:
        self.stopping.set()
        self.slot.close()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)
