"""Camera source: every code on a carton or pallet face, read from video frames.

Frames come from OpenCV (``opencv-python-headless``): a V4L2 device
(``/dev/video0``), an RTSP/HTTP stream, a video file, or a folder of images
(or one image).  Three parts, each in its own place:

* a **capture thread** (:class:`CaptureThread`) reads frames as fast as the
  device delivers them and keeps only the latest one in a :class:`LatestFrame`
  slot; a frame replaced before the decoder took it is *dropped* and counted,
  never queued.  A live stream that fails is closed and reopened with capped
  exponential backoff.  Files and folders are played once: as fast as the
  decoder goes and losslessly with ``fps = 0``, or paced at ``fps`` with drops
  like a camera;
* a **decode worker** (one thread of its own, off the event loop) takes the
  latest frame and runs :class:`drivers.decoders.FrameDecoder` on it, within
  the per-frame budget;
* the **event loop** side filters what was read with a :class:`CodeFilter`
  (a code seen again within ``dedupe_s`` is the same scan; with
  ``confirm_frames = N`` a code is accepted only once seen in N frames) and
  submits each new code as a :class:`~scanner_agent.kernel.RawScan` whose bytes are the
  AIM identifier and payload, exactly what a 2D handheld sends.

A library fault on one frame is an error event (counted in
:attr:`CameraStats.decode_errors`, logged), never a dead source.
:class:`ScriptedCapture` is the in-memory fake camera the tests use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from drivers.decoders import FrameDecoder, FrameResult, Symbol
from drivers.registry import source_name
from scanner_agent.kernel import (
    ConfigError,
    DeviceDisconnected,
    DeviceStatus,
    DeviceUnavailable,
    Intake,
    RawScan,
    utc_now,
)

if TYPE_CHECKING:
    from numpy.typing import NDArray

    Image = NDArray[Any]
    """An OpenCV frame: 8-bit grayscale (h, w) or BGR (h, w, 3)."""
else:
    Image = Any

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".pgm"})
STREAM_TIMEOUT_MS = 5000
"""Open and read timeout for network streams, so a dead camera is noticed and reopened."""


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

    def __init__(self, device: str, *, width: int = 0, height: int = 0, fps: float = 0.0) -> None:
        import cv2

        self.device = device
        kind = device_kind(device)
        self.live = kind in ("v4l2", "stream")
        if kind == "v4l2":
            index = int(device) if device.isdigit() else device
            cap = cv2.VideoCapture(index, cv2.CAP_V4L2)
        elif kind == "stream":
            cap = cv2.VideoCapture(
                device,
                cv2.CAP_FFMPEG,
                [
                    cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                    STREAM_TIMEOUT_MS,
                    cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                    STREAM_TIMEOUT_MS,
                ],
            )
        else:
            if not Path(device).is_file():
                raise DeviceUnavailable(
                    f"Failed to open {device!r} as a video: no such file", device=device
                )
            cap = cv2.VideoCapture(device)
        if not cap.isOpened():
            cap.release()
            raise DeviceUnavailable(
                f"Failed to open {device!r} as a camera: OpenCV could not open it", device=device
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
                f"Failed to read {self.device!r} as a camera: no frame", device=self.device
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


def open_capture(device: str, *, width: int = 0, height: int = 0, fps: float = 0.0) -> Capture:
    """Open ``device`` as the right kind of capture.

    Raises:
        DeviceUnavailable: it cannot be opened (absent, busy, not a video).
    """
    if device_kind(device) in ("folder", "image"):
        return ImageFolder(device)
    return VideoCapture(device, width=width, height=height, fps=fps)


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
    """Reads frames into a :class:`LatestFrame`, reopening a live stream that fails.

    Args:
        opener: opens the capture (``open_capture`` bound to the options).
        slot: where frames go.
        live: a device or stream (reopened when it fails) rather than a file (read once).
        fps: for files, play at this rate (0: as fast as they are taken).
        backoff_initial: first wait before reopening, seconds (doubles up to ``backoff_max``).
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
    ) -> None:
        super().__init__(name=f"capture-{name}", daemon=True)
        self.opener = opener
        self.slot = slot
        self.live = live
        self.fps = fps
        self.backoff_initial = min(backoff_initial, backoff_max)
        self.backoff_max = backoff_max
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
        self.io_errors = 0
        self._delivered = False

    def run(self) -> None:
        delay = self.backoff_initial
        index = 0
        try:
            while not self.stopping.is_set():
                try:
                    cap = self.opener()
                except Exception as exc:  # DeviceUnavailable, or a cv2.error from the backend
                    self.reason = str(exc)
                    self.io_errors += 1
                    if not self.live:
                        self.fatal = exc  # a missing file will not appear by retrying
                        return
                    if not isinstance(exc, DeviceUnavailable):
                        log.warning("%s: opening failed: %s", self.name, exc)
                    log.warning("%s; retrying in %.1f s", exc, delay)
                    self.opened.set()
                    self.stopping.wait(delay)
                    delay = min(delay * 2, self.backoff_max)
                    continue
                self.connected, self.reason = True, None
                self.opened.set()
                self._delivered = False
                try:
                    index = self._pump(cap, index)
                    if not self.live:
                        return  # a file played to its end
                except Exception as exc:  # DeviceDisconnected, or a backend fault mid-stream
                    self.reason = str(exc)
                    self.io_errors += 1
                    if not self.live:
                        log.warning("%s: stopped reading: %s", self.name, exc)
                        return
                    self.reconnects += 1
                    if self._delivered:
                        delay = self.backoff_initial  # it worked for a while: start again short
                    log.warning("%s; reopening in %.1f s", exc, delay)
                finally:
                    self.connected = False
                    with contextlib.suppress(Exception):
                        cap.close()
                self.stopping.wait(delay)
                delay = min(delay * 2, self.backoff_max)
        finally:
            self.opened.set()
            self.finished.set()
            self.slot.close()

    def _pump(self, cap: Capture, index: int) -> int:
        """Read until the end of a file, a failure or a stop; returns the next index."""
        rate = self.fps or cap.rate or 0.0
        start = time.monotonic()
        first = index
        while not self.stopping.is_set():
            image = cap.read()
            if image is None:
                return index
            self._delivered = True
            self.frames += 1
            if self.live:
                t = time.monotonic()
            else:
                t = (index - first) / (rate or 1.0)
                if self.fps:  # pace a file like a camera: real time, with drops
                    self.stopping.wait(
                        max(0.0, start + (index - first) / self.fps - time.monotonic())
                    )
            self.slot.put(Frame(index, t, image))
            index += 1
        return index

    def stop(self, timeout: float = 2.0) -> None:
        self.stopping.set()
        self.slot.close()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)


# -- duplicate filter and confirmation ---------------------------------------------


class CodeFilter:
    """Turns per-frame sightings into scans: once per appearance, optionally confirmed.

    A code seen again within ``dedupe_s`` seconds of its last sighting is the
    same scan (a carton standing in view for a minute is one scan).  With
    ``confirm_frames = N`` a code becomes a scan at its N-th sighting, each
    within ``dedupe_s`` of the one before, which stops one-frame misreads.

    >>> f = CodeFilter(dedupe_s=2.0, confirm_frames=2)
    >>> f.feed(["A", "B"], now=0.0), f.feed(["A"], now=0.1), f.feed(["A", "B"], now=0.2)
    ([], ['A'], ['B'])
    >>> f.feed(["A"], now=1.0), f.feed(["A"], now=9.0), f.feed(["A"], now=9.1)
    ([], [], ['A'])
    """

    def __init__(self, dedupe_s: float = 2.0, confirm_frames: int = 1) -> None:
        self.dedupe_s = dedupe_s
        self.confirm_frames = max(confirm_frames, 1)
        self._seen: dict[str, tuple[float, int]] = {}
        self._pruned_at = 0.0

    def feed(self, keys: Iterable[str], now: float) -> list[str]:
        """Sightings in one frame; returns the keys that become scans now, in order."""
        out: list[str] = []
        for key in dict.fromkeys(keys):
            last, count = self._seen.get(key, (None, 0))
            if last is None or now - last > self.dedupe_s:
                count = 0
            count += 1
            self._seen[key] = (now, count)
            if count == self.confirm_frames:
                out.append(key)
        if now - self._pruned_at > max(self.dedupe_s, 1.0):
            self._pruned_at = now
            self._seen = {k: v for k, v in self._seen.items() if now - v[0] <= self.dedupe_s}
        return out


# -- the source --------------------------------------------------------------------


@dataclass(slots=True)
class CameraStats:
    """Counters of a camera source since it started."""

    frames_captured: int = 0
    frames_decoded: int = 0
    frames_dropped: int = 0
    """Frames replaced by a newer one before the decoder got to them."""
    symbols_read: int = 0
    """Codes read, every sighting in every frame."""
    scans_submitted: int = 0
    """New codes handed to the intake (after the duplicate filter and confirmation)."""
    over_budget: int = 0
    """Frames whose retry passes were skipped because ``frame_budget_ms`` was spent."""
    decode_errors: int = 0
    """Frames on which a decoding library raised (the frame is skipped, the source goes on)."""
    reconnects: int = 0
    decode_ms_avg: float = 0.0
    """Moving average of the time to decode one frame."""


class CameraSource:
    """Reads codes from a camera or video and submits each new one as a scan."""

    def __init__(
        self,
        name: str,
        device: str,
        decoder: FrameDecoder,
        *,
        opener: Callable[[], Capture] | None = None,
        live: bool | None = None,
        width: int = 0,
        height: int = 0,
        fps: float = 0.0,
        dedupe_s: float = 2.0,
        confirm_frames: int = 1,
        reconnect_max_s: float = 5.0,
    ) -> None:
        self.name = name
        self.device = device
        self.decoder = decoder
        self.opener = opener or (lambda: open_capture(device, width=width, height=height, fps=fps))
        self.fps = fps
        self.filter = CodeFilter(dedupe_s, confirm_frames)
        self.reconnect_max_s = reconnect_max_s
        self.stats = CameraStats()
        self.last_scan_at: float | None = None
        self.started = asyncio.Event()
        """Set once the capture is open (or retrying a live device): the daemon waits for it."""
        self.finished = asyncio.Event()
        """Set when a file or folder has been read to its end and every code submitted."""
        self.live = device_kind(device) in ("v4l2", "stream") if live is None else live
        """Reopen on failure and drop frames (devices, streams) or read once (files)."""
        self._capture: CaptureThread | None = None
        self._lossless = fps == 0 and not self.live

    def status(self) -> DeviceStatus:
        """Connected, device, last scan and error count (for status lines and the TUI)."""
        cap = self._capture
        self._sync_stats()
        return DeviceStatus(
            source=self.name,
            connected=bool(cap and cap.connected),
            device=self.device,
            last_scan_at=self.last_scan_at,
            errors=self.stats.decode_errors + (cap.io_errors if cap else 0),
            reason=cap.reason if cap else None,
        )

    async def run(self, intake: Intake) -> None:
        """Capture, decode and submit until cancelled (files: until their end)."""
        loop = asyncio.get_running_loop()
        slot = LatestFrame(lossless=self._lossless)
        capture = CaptureThread(
            self.name,
            self.opener,
            slot,
            live=self.live,
            fps=0.0 if self.live else self.fps,
            backoff_max=self.reconnect_max_s,
        )
        self._capture = capture
        pool = ThreadPoolExecutor(1, thread_name_prefix=f"decode-{self.name}")
        capture.start()
        try:
            await loop.run_in_executor(pool, capture.opened.wait)
            if capture.fatal is not None:
                raise capture.fatal
            self.started.set()
            log.info("%s: reading %s", self.name, self.device)
            while True:
                got = await loop.run_in_executor(pool, self._take_and_decode, slot)
                if got is None:
                    if capture.finished.is_set() and slot.empty():
                        break
                    continue
                await self._handle(intake, *got)
            log.info("%s: end of %s (%s)", self.name, self.device, self._summary())
            self.finished.set()
        finally:
            capture.stop(timeout=0)
            pool.shutdown(wait=False, cancel_futures=True)
            self._sync_stats()

    def _take_and_decode(self, slot: LatestFrame) -> tuple[Frame, FrameResult] | None:
        """On the decode thread: wait for the latest frame and decode it."""
        frame = slot.take(0.25)
        if frame is None:
            return None
        return frame, self.decoder.decode(frame.image)

    async def _handle(self, intake: Intake, frame: Frame, result: FrameResult) -> None:
        st = self.stats
        st.frames_decoded += 1
        st.decode_ms_avg += (result.elapsed_ms - st.decode_ms_avg) / min(st.frames_decoded, 50)
        st.symbols_read += len(result.symbols)
        if result.over_budget:
            st.over_budget += 1
        if result.errors:
            st.decode_errors += 1
            if st.decode_errors == 1 or st.decode_errors % 100 == 0:
                log.warning(
                    "%s: frame %d: %s (%d such frames so far)",
                    self.name,
                    frame.index,
                    "; ".join(result.errors),
                    st.decode_errors,
                )
        by_key: dict[str, Symbol] = {}
        for s in result.symbols:
            by_key.setdefault(s.text if s.text else s.payload.hex(), s)
        new = self.filter.feed(by_key, frame.t)
        if not new:
            return
        scans = [
            RawScan(by_key[k].scan, source=self.name, device=self.device, scanned_at=frame.at)
            for k in new
        ]
        st.scans_submitted += len(scans)
        self.last_scan_at = time.time()
        for scan, outcome in zip(scans, await intake.submit_many(scans), strict=True):
            if outcome.accepted:
                log.debug("%s: accepted %s", self.name, outcome.code)
            else:
                log.info(
                    "%s: %s %r: %s", self.name, outcome.verdict.value, scan.data, outcome.reason
                )

    def _sync_stats(self) -> None:
        cap = self._capture
        if cap is not None:
            self.stats.frames_captured = cap.frames
            self.stats.frames_dropped = cap.slot.dropped
            self.stats.reconnects = cap.reconnects

    def _summary(self) -> str:
        self._sync_stats()
        st = self.stats
        return (
            f"{st.frames_decoded} frames decoded, {st.frames_dropped} dropped, "
            f"{st.scans_submitted} scans, {st.decode_errors} frames with errors"
        )


# -- decoding files for the CLI ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FileRead:
    """One code read from a file by :func:`decode_paths`."""

    file: str
    frame: int
    symbol: Symbol


@dataclass(frozen=True, slots=True)
class FileDone:
    """The end of one file in :func:`decode_paths`: its frames and the codes reported from it.

    ``frames`` is 0 for an image OpenCV could not read, or for a folder with no
    image in it (then ``file`` is the folder), so a caller can say that nothing
    was read instead of saying nothing.
    """

    file: str
    frames: int
    codes: int


def image_files(folder: Path, *, recursive: bool) -> list[Path]:
    """The images in ``folder`` (and, ``recursive``, its subfolders), sorted by path.

    Symlinked subfolders are not followed, so a link loop cannot make the walk endless.
    """
    if not recursive:
        return sorted(p for p in folder.iterdir() if p.is_file() and _is_image(p))
    found = []
    for top, dirs, files in os.walk(folder, followlinks=False):
        dirs.sort()
        found += [Path(top, f) for f in files if _is_image(Path(f))]
    return sorted(found)


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def decode_paths(
    paths: Sequence[str], decoder: FrameDecoder, *, unique: bool = False, recursive: bool = True
) -> Iterator[FileRead | FileDone]:
    """Every code in images, videos and folders of images, frame by frame.

    Folders are expanded to their images (one file each, frame 0), with those
    of their subfolders unless ``recursive`` is false; a video gives every
    frame.  With ``unique`` a text is reported once per file.  Each file ends
    with a :class:`FileDone`, so files with no code are reported too.

    Raises:
        DeviceUnavailable: a path does not exist or cannot be opened.
    """
    for path in paths:
        kind = device_kind(path)
        if kind in ("v4l2", "stream"):
            raise DeviceUnavailable(
                f"Failed to decode {path!r} as a file: Expected an image, video or folder",
                device=path,
            )
        if kind == "folder":
            files = [str(p) for p in image_files(Path(path), recursive=recursive)]
            if not files:
                yield FileDone(path, 0, 0)
        else:
            files = [path]
        for file in files:
            cap = open_capture(file)
            seen: set[str] = set()
            index = codes = 0
            try:
                while (image := cap.read()) is not None:
                    for s in decoder.decode(image, whole=True if index == 0 else None).symbols:
                        if unique and s.text in seen:
                            continue
                        seen.add(s.text)
                        codes += 1
                        yield FileRead(file, index, s)
                    index += 1
            finally:
                cap.close()
            yield FileDone(file, index, codes)


# -- factory -----------------------------------------------------------------------


def frame_decoder(options: Mapping[str, Any]) -> FrameDecoder:
    """The decoder a camera source with these (resolved) options uses: the one pipeline
    that ``scanner-agent decode`` runs too, so a still checked there reads as on the line.

    Raises:
        ConfigError: a bad value (named by its key).
        DecoderUnavailable: the decoding library is missing.
    """
    for key in ("frame_budget_ms", "full_frame_every"):
        if options[key] < 0:
            raise ConfigError(f"source.{key}: expected >= 0, got {options[key]}")
    return FrameDecoder(
        options["decoder"],
        options["formats"],
        budget_ms=options["frame_budget_ms"],
        roi=options["roi"],
        locate=options["locate"],
        full_frame_every=options["full_frame_every"],
    )


def build(name: str, options: dict[str, Any]) -> CameraSource:
    """Factory used by :mod:`drivers.registry`."""
    for key in ("dedupe_s", "frame_budget_ms", "fps"):
        if options[key] < 0:
            raise ConfigError(f"source.{key}: expected >= 0, got {options[key]}")
    if options["confirm_frames"] < 1:
        raise ConfigError(f"source.confirm_frames: expected >= 1, got {options['confirm_frames']}")
    decoder = frame_decoder(options)
    return CameraSource(
        source_name("camera", name, options),
        options["device"],
        decoder,
        width=options["width"],
        height=options["height"],
        fps=options["fps"],
        dedupe_s=options["dedupe_s"],
        confirm_frames=options["confirm_frames"],
        reconnect_max_s=options["reconnect_max_s"],
    )
