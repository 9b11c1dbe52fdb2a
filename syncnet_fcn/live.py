"""Live sources, read window by window: a stream URL (HLS, RTMP, RTSP, SRT, HTTP) or a file at its own pace.

:class:`StreamSource` demuxes packets (no decoding) and keeps going through trouble: a dropped
connection or a playlist that stops growing is reopened with back-off, and the gap is reported.
:class:`WindowCutter` keeps only the last window's packets and, every hop, copies them (no re-encoding)
into a small Matroska file that starts on a keyframe, so each window is read by the same
:class:`~syncnet_fcn.pipeline.SyncPipeline` as ``detect`` reads a file. Memory is bounded by one
window of compressed packets whatever the length of the stream.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import av
from av.stream import Discard

from .errors import InvalidArgumentError

#: URL schemes a monitor may read; anything else (file://, data:, a bare path) is refused from the web
NETWORK_SCHEMES = ("http", "https", "rtmp", "rtmps", "rtsp", "rtsps", "srt")
# A jump in timestamps larger than this inside one connection starts the window over (discontinuity).
_MAX_TIME_JUMP_S = 2.0
# After a reconnect, a first packet this far before the last one seen means the source started over.
_RESTART_S = 60.0


def validate_source(source: str, *, allow_files: bool) -> str:
    """``source`` if it may be monitored: a URL of :data:`NETWORK_SCHEMES`, or (CLI only) an existing file."""
    source = str(source).strip()
    parts = urlsplit(source)
    scheme = parts.scheme.lower()
    if scheme in NETWORK_SCHEMES:
        if not parts.hostname:
            raise InvalidArgumentError(f"{source!r} has no host")
        return source
    if allow_files and (not scheme or len(scheme) == 1):  # a path (a drive letter is not a scheme)
        if not os.path.isfile(source):
            raise InvalidArgumentError(f"no such file: {source}")
        return source
    allowed = ", ".join(f"{s}://" for s in NETWORK_SCHEMES)
    raise InvalidArgumentError(f"cannot monitor {source!r}: give a stream URL ({allowed})"
                               + ("" if not allow_files else " or a video file"))


def is_network(source: str) -> bool:
    return urlsplit(source).scheme.lower() in NETWORK_SCHEMES


@dataclass
class SourcePacket:
    """One compressed packet, copied out of the demuxer so it can be written into several windows."""

    kind: str  # "video" | "audio"
    data: bytes
    pts: int
    dts: int
    time_base: object
    keyframe: bool
    time_s: float  # stream time: seconds since the first packet of the monitor, continuous over reconnects
    source_s: float  # the source's own timestamp in seconds
    arrival: float  # time.monotonic() when it was read


@dataclass
class SourceEvent:
    """Something the reader wants said: connected, disconnected, reconnected (with the gap), ended."""

    kind: str
    detail: dict = field(default_factory=dict)


@dataclass
class Connection:
    """The streams of one open connection: the templates a window file copies."""

    video: object
    audio: object | None


# opens of a network source that find no video stream before it is called video-less
VIDEOLESS_OPENS = 6


class StreamSource:
    """Packets of ``source`` in arrival order, interleaved with :class:`SourceEvent` and :class:`Connection`.

    Network sources are reopened after an error, end of stream or a read stalled for ``read_timeout``
    seconds, waiting ``backoff`` seconds (doubling up to ``max_backoff``) between tries; the reader gives
    up once nothing new has arrived for ``give_up_after`` seconds. A file is read once, paced by its
    timestamps when ``realtime``. ``stop`` (a :class:`threading.Event`) ends the loop promptly.
    """

    def __init__(self, source: str, *, realtime: bool = False, open_timeout: float = 10.0,
                 read_timeout: float = 10.0, backoff: float = 1.0, max_backoff: float = 8.0,
                 give_up_after: float = 300.0, stop: threading.Event | None = None):
        self.source = source
        self.network = is_network(source)
        self.realtime = realtime
        self.open_timeout = open_timeout
        self.read_timeout = read_timeout
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.give_up_after = give_up_after
        self.stop = stop or threading.Event()
        self._origin: float | None = None  # source seconds at stream time 0
        self._last = {"video": None, "audio": None}  # last source seconds seen per kind

    def _open(self):
        options = {}
        if ".m3u8" in self.source.lower():
            options["live_start_index"] = "-1"  # join a live playlist at its newest segment
        if self.source.lower().startswith("rtsp"):
            options["rtsp_transport"] = "tcp"
        if not self.network:
            return av.open(self.source, metadata_errors="ignore")
        return av.open(self.source, options=options, timeout=(self.open_timeout, self.read_timeout),
                       metadata_errors="ignore")

    def __iter__(self) -> Iterator[SourcePacket | SourceEvent | Connection]:
        delay = self.backoff
        last_packet_at = time.monotonic()
        lost_at = None
        tries = 0
        videoless_opens = 0
        while not self.stop.is_set():
            try:
                container = self._open()
            except (av.FFmpegError, OSError) as exc:
                container, reason = None, _reason(exc)
            if container is not None:
                try:
                    if not container.streams.video:
                        videoless_opens += 1
                        # a live playlist opened while its first segment is still being written can probe
                        # without video: try again a few times before calling the stream video-less
                        if not self.network or videoless_opens >= VIDEOLESS_OPENS:
                            yield SourceEvent("error", {"message": f"{_name(self.source)} has no video stream"})
                            return
                        raise av.FFmpegError(0, "no video stream found yet")
                    for item in self._read(container, lost_at, last_packet_at):
                        if isinstance(item, SourcePacket):
                            last_packet_at = item.arrival
                            delay = self.backoff
                            lost_at = None
                            tries = 0
                        yield item
                    reason = "end of stream"
                except (av.FFmpegError, OSError) as exc:
                    reason = _reason(exc)
                finally:
                    container.close()
            if not self.network or self.stop.is_set():
                yield SourceEvent("ended", {"reason": reason})
                return
            if lost_at is None:
                lost_at = time.monotonic()
                yield SourceEvent("disconnected", {"reason": reason})
            if time.monotonic() - last_packet_at > self.give_up_after:
                yield SourceEvent("ended", {"reason": f"nothing new for {self.give_up_after:g} s ({reason})"})
                return
            tries += 1
            yield SourceEvent("retrying", {"attempt": tries, "in_s": round(delay, 2), "reason": reason})
            self.stop.wait(delay)
            delay = min(delay * 2, self.max_backoff)

    def _read(self, container, lost_at: float | None, last_packet_at: float):
        video = container.streams.best("video")
        audio = container.streams.best("audio")
        for other in container.streams:
            if other not in (video, audio):
                other.discard = Discard.all  # an HLS master playlist: the other variants are not fetched
        yield Connection(video, audio)
        streams = [video] + ([audio] if audio is not None else [])
        paced_from = None
        reconnected = lost_at is not None
        for packet in container.demux(streams):
            if self.stop.is_set():
                return
            stamp = packet.pts if packet.pts is not None else packet.dts
            if stamp is None or packet.size == 0:
                continue
            kind = "video" if packet.stream.index == video.index else "audio"
            seconds = float(stamp * packet.time_base)
            last = self._last[kind]
            if self._origin is None:
                self._origin = seconds
            elif last is not None and seconds <= last:
                if last - seconds < _RESTART_S:
                    continue  # already seen (a rejoined playlist repeats its newest segment)
                self._origin += seconds - last  # the source started its clock over: stay continuous
                yield SourceEvent("discontinuity", {"reason": "timestamps started over"})
            now = time.monotonic()
            if reconnected and kind == "video":
                reconnected = False
                gap = None if last is None else round(seconds - last, 3)
                # gap_s: wall time with no new packet; stream_gap_s: the stream's own time missed
                yield SourceEvent("reconnected", {"gap_s": round(now - last_packet_at, 3), "stream_gap_s": gap,
                                                  "noticed_after_s": round(lost_at - last_packet_at, 3)})
            elif kind == "video" and last is not None and seconds - last > _MAX_TIME_JUMP_S:
                yield SourceEvent("discontinuity", {"stream_gap_s": round(seconds - last, 3)})
            self._last[kind] = seconds
            time_s = seconds - self._origin
            if self.realtime and not self.network:
                if paced_from is None:
                    paced_from = now - time_s
                wait = paced_from + time_s - now
                if wait > 0 and self.stop.wait(wait):
                    return
                now = time.monotonic()
            dts = packet.dts if packet.dts is not None else stamp
            yield SourcePacket(kind, bytes(packet), stamp, dts, packet.time_base, bool(packet.is_keyframe),
                               time_s, seconds, now)


@dataclass
class Window:
    """A window of the stream written to ``path`` (a Matroska file holding just these packets)."""

    index: int
    path: Path
    start_s: float  # stream time of the first video frame
    end_s: float
    source_start_s: float  # the same two instants on the source's own clock
    source_end_s: float
    first_arrival: float  # time.monotonic() of its first and last packets
    last_arrival: float
    has_audio: bool


class WindowCutter:
    """Cuts the packet stream into windows ``window_s`` long every ``hop_s`` seconds of stream time.

    A window starts on the keyframe nearest before its start, so it decodes on its own; a new connection
    or a discontinuity starts over (a window never spans a gap, where the sound would slide against the
    pictures). Packets older than the next window are dropped as they go.
    """

    def __init__(self, window_s: float = 10.0, hop_s: float = 5.0, workdir: str | os.PathLike | None = None):
        if not 2.0 <= window_s <= 60.0:
            raise InvalidArgumentError(f"the window must be 2 to 60 s, got {window_s:g}")
        if not 0.5 <= hop_s <= window_s:
            raise InvalidArgumentError(f"the hop must be 0.5 s to the window length, got {hop_s:g}")
        self.window_s = float(window_s)
        self.hop_s = float(hop_s)
        self.workdir = Path(workdir) if workdir else Path(tempfile.gettempdir())
        self.packets: deque[SourcePacket] = deque()
        self.connection: Connection | None = None
        self.next_end: float | None = None
        self.count = 0
        self._latest = {"video": -1e18, "audio": -1e18}

    def reset(self, connection: Connection | None = None) -> None:
        if connection is not None:
            self.connection = connection
        self.packets.clear()
        self.next_end = None
        self._latest = {"video": -1e18, "audio": -1e18}

    def add(self, packet: SourcePacket) -> Window | None:
        """Take one packet; a :class:`Window` when one is complete."""
        if self.next_end is None:
            if packet.kind != "video" or not packet.keyframe:
                return None  # wait for a keyframe to start from
            self.next_end = packet.time_s + self.window_s
        self.packets.append(packet)
        self._latest[packet.kind] = max(self._latest[packet.kind], packet.time_s)
        has_audio = self.connection is not None and self.connection.audio is not None
        ready = self._latest["video"] >= self.next_end and (
            not has_audio or self._latest["audio"] >= self.next_end or self._latest["video"] >= self.next_end + 2.0)
        if not ready:
            return None
        window = self._cut(self.next_end)
        self.next_end += self.hop_s
        self._drop_before(self.next_end - self.window_s)
        return window

    def _start_keyframe(self, start_s: float) -> SourcePacket | None:
        chosen = None
        for p in self.packets:
            if p.kind == "video" and p.keyframe:
                if p.time_s <= start_s + 1e-6 or chosen is None:
                    chosen = p
                if p.time_s > start_s:
                    break
        return chosen

    def _drop_before(self, start_s: float) -> None:
        keep_from = self._start_keyframe(start_s)
        limit = keep_from.time_s if keep_from is not None else start_s
        while self.packets and self.packets[0].time_s < limit:
            self.packets.popleft()

    def _cut(self, end_s: float) -> Window:
        start = self._start_keyframe(end_s - self.window_s)
        chosen = [p for p in self.packets if start.time_s <= p.time_s < end_s]
        self.count += 1
        fd, name = tempfile.mkstemp(prefix=f"window{self.count:06d}-", suffix=".mkv", dir=self.workdir)
        os.close(fd)
        path = Path(name)
        try:
            _write_packets(path, self.connection, chosen, start.source_s)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return Window(index=self.count, path=path, start_s=start.time_s, end_s=end_s,
                      source_start_s=start.source_s, source_end_s=start.source_s + end_s - start.time_s,
                      first_arrival=min(p.arrival for p in chosen), last_arrival=max(p.arrival for p in chosen),
                      has_audio=any(p.kind == "audio" for p in chosen))


def _write_packets(path: Path, connection: Connection, packets: list[SourcePacket], zero_s: float) -> None:
    """Copy ``packets`` into a Matroska file whose clock starts at ``zero_s`` of the source's.

    Both streams move by the same time, so their sync is untouched; a file starting at 0 is also what
    the Matroska duration field (counted from 0, not from the first packet) expects.
    """
    with av.open(str(path), "w", format="matroska") as out:
        targets = {"video": out.add_stream_from_template(connection.video)}
        if connection.audio is not None:
            targets["audio"] = out.add_stream_from_template(connection.audio)
        for p in packets:
            if p.kind not in targets:
                continue
            packet = av.Packet(p.data)
            shift = int(round(zero_s / p.time_base))
            packet.pts, packet.dts, packet.time_base = p.pts - shift, p.dts - shift, p.time_base
            packet.is_keyframe = p.keyframe
            packet.stream = targets[p.kind]
            out.mux(packet)


def _reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text.splitlines()[0]


def _name(source: str) -> str:
    return os.path.basename(source) if not is_network(source) else source


__all__ = ["NETWORK_SCHEMES", "validate_source", "is_network", "SourcePacket", "SourceEvent", "Connection",
           "StreamSource", "Window", "WindowCutter"]
