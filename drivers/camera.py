"""Camera source: every code on a carton or pallet face, read from video frames.

Frames come from OpenCV (``opencv-python-headless``): a V4L2 device
(``/dev/video0``), an IP camera's RTSP (H.264) or HTTP (MJPEG) stream, a video
file, or a folder of images (or one image).  Three parts, each in its own place:

* a **capture thread** (:class:`drivers.capture.CaptureThread`) reads frames as
  fast as the device delivers them and keeps only the latest one in a
  :class:`~drivers.capture.LatestFrame` slot; a frame replaced before the decoder
  took it is *dropped* and counted, never queued.  A live stream that fails or
  stalls is reopened with capped exponential backoff, and its clock stops while
  it is down.  Files and folders are played once: as fast as the decoder goes
  and losslessly with ``fps = 0``, or paced at ``fps`` with drops like a camera;
* a **decode worker** (one thread of its own, off the event loop) takes the
  latest frame and runs :class:`drivers.decoders.FrameDecoder` on it, within
  the per-frame budget;
* the **event loop** side filters what was read with a :class:`CodeFilter`
  (a code seen again within ``dedupe_s`` is the same scan; with
  ``confirm_frames = N`` a code is accepted only once seen in N frames) and
  submits each new code as a :class:`~scanner_agent.kernel.RawScan` whose bytes are the
  AIM identifier and payload, exactly what a 2D handheld sends.

A library fault on one frame is an error event (counted in
:attr:`CameraStats.decode_errors`, logged), never a dead source.  A stream
URL's password never leaves this module: logs, status and scans name the
device with it masked (:func:`drivers.capture.safe_url`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drivers.capture import (
    IMAGE_SUFFIXES,
    Capture,
    CaptureThread,
    Frame,
    LatestFrame,
    device_kind,
    open_capture,
)
from drivers.decoders import FrameDecoder, FrameResult, Symbol
from drivers.ipcam import STREAM_TIMEOUT_MS, safe_url
from drivers.naming import source_label
from scanner_agent.kernel import (
    ConfigError,
    DeviceStatus,
    DeviceUnavailable,
    Intake,
    RawScan,
)

__all__ = [
    "IMAGE_SUFFIXES",
    "CameraSource",
    "CameraStats",
    "CodeFilter",
    "FileDone",
    "FileRead",
    "build",
    "decode_paths",
    "device_kind",
    "frame_decoder",
    "image_files",
]

log = logging.getLogger(__name__)

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
    stalls: int = 0
    """Connections the watchdog gave up: open, but no frame for ``stall_s``."""
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
        stall_s: float = STREAM_TIMEOUT_MS / 1000,
    ) -> None:
        self.name = name
        self.device = safe_url(device)
        """The device as logs, status and scans show it (a stream URL's password masked)."""
        self.stall_s = stall_s
        self.decoder = decoder
        # FFmpeg gives up a second after the watchdog, which so reports the stall first.
        timeout_ms = round((stall_s + 1) * 1000) if stall_s else STREAM_TIMEOUT_MS
        self.opener = opener or (
            lambda: open_capture(device, width=width, height=height, fps=fps, timeout_ms=timeout_ms)
        )
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
            stall_s=self.stall_s if self.live else 0.0,
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
            self.stats.stalls = cap.stalls

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
    for key in ("dedupe_s", "frame_budget_ms", "fps", "stall_s"):
        if options[key] < 0:
            raise ConfigError(f"source.{key}: expected >= 0, got {options[key]}")
    if options["confirm_frames"] < 1:
        raise ConfigError(f"source.confirm_frames: expected >= 1, got {options['confirm_frames']}")
    decoder = frame_decoder(options)
    return CameraSource(
        source_label("camera", name, safe_url(options["device"])),
        options["device"],
        decoder,
        width=options["width"],
        height=options["height"],
        fps=options["fps"],
        dedupe_s=options["dedupe_s"],
        confirm_frames=options["confirm_frames"],
        reconnect_max_s=options["reconnect_max_s"],
        stall_s=options["stall_s"],
    )
