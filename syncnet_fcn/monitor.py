"""Live sync monitoring: rolling windows of a stream → readings → alerts.

    >>> monitor = Monitor("https://example.org/live.m3u8", on_event=print)
    >>> monitor.run()          # until the stream ends or monitor.stop() is called

A reader thread demuxes the source (:class:`~syncnet_fcn.live.StreamSource`) and cuts windows
(:class:`~syncnet_fcn.live.WindowCutter`); the scoring loop reads each window with the same
:class:`~syncnet_fcn.pipeline.SyncPipeline` as ``detect``. Between them sits a one-window mailbox:
when scoring falls behind, the older waiting window is skipped, counted and said, so the readings stay
close to live and nothing queues without bound. :class:`AlertRule` turns readings into alerts.

Every event is a plain dict with a ``type``: ``reading`` (one per scored window), ``alert``,
``back_in_sync``, ``skipped``, ``disconnected``, ``retrying``, ``reconnected``, ``discontinuity``,
``window_error``, ``ended``.
"""

from __future__ import annotations

import json
import queue
import shutil
import statistics
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from . import TIMELINE_FPS, memory
from .errors import InvalidArgumentError, NoAudioError, NoFaceError, SyncNetError
from .live import Connection, is_network, SourceEvent, SourcePacket, StreamSource, Window, WindowCutter

# Alert defaults, from benchmarks/monitor.py (docs/monitor.md has the figures): on in-sync streams a
# reliable window reads within ±1 frame of the clip's own offset, so 2 frames away is already a change.
# Two reliable windows in a row must agree before an alert — except a window whose confidence clears the
# engine's "certain" bar, which decides alone. With a 10 s window and a 5 s hop the first window wholly
# after a change ends two hops after it: it can alert on time only by itself, while two windows keep a
# lone odd reading (music over a face that happens to pass as reliable) from alerting. The bar is fitted
# on training footage (benchmarks/monitor_certain.py), far above what another voice reaches there.
DEFAULT_THRESHOLD_FRAMES = 2
DEFAULT_CONSECUTIVE = 2
#: per engine, the confidence from which one window alone may alert (benchmarks/monitor_certain.py)
ALERTS_PATH = Path(__file__).resolve().parent / "data" / "monitor_alerts.json"


def certain_bar(engine) -> float | None:
    """The stored "certain" confidence for ``engine`` (a pipeline's engine), or None where none was fitted
    or it was fitted on another calibration of the engine (confidences then live on another scale)."""
    try:
        fitted = json.loads(ALERTS_PATH.read_text()).get(getattr(engine, "name", None))
    except (OSError, ValueError):
        return None
    # the engine's own reliability bar: the landmark engine's calibration, the fused engine's fit
    calibration = getattr(engine, "calibration", None) or getattr(engine, "fusion", None)
    if not isinstance(fitted, dict) or not isinstance(calibration, dict):
        return None
    current = calibration.get("reliable_confidence")
    if current is None or abs(float(current) - float(fitted.get("reliable_confidence", float("nan")))) > 1e-5:
        return None
    bar = fitted.get("certain_confidence")
    return float(bar) if bar is not None else None


EventCallback = Callable[[dict], None]


@dataclass
class WindowReading:
    """The sync of one window: how many faces, which one speaks, its offset and how sure."""

    window: int
    stream_start_s: float
    stream_end_s: float
    source_start_s: float  # the window on the source's own clock (its timestamps)
    source_end_s: float
    wall_time: str  # UTC, ISO 8601, when the reading was made
    faces: int | None  # None: not looked for (no audio to compare the faces with)
    speaking_face: int | None
    offset_frames: int | None
    confidence: float | None
    reliable: bool
    note: str = ""
    latency_s: float = 0.0  # from the arrival of the window's newest frame to this reading
    oldest_frame_latency_s: float = 0.0  # the same from its oldest frame (≥ the window length)
    score_s: float = 0.0
    skipped_so_far: int = 0
    tracks: list[dict] = field(default_factory=list)

    def to_event(self) -> dict:
        return {"type": "reading", **asdict(self)}


class AlertRule:
    """Alert when the speaking face stays ``threshold`` frames or more from ``expect`` for ``consecutive``
    reliable windows; say "back in sync" after as many reliable windows within it. While out of sync, a
    new steady offset (more than a frame from the alerted one) alerts again. A window whose confidence
    is ``certain`` or more decides any of these alone. Unreliable windows (nobody speaking, music, a
    turned face) neither count nor break a run.
    """

    def __init__(self, threshold: int = DEFAULT_THRESHOLD_FRAMES, consecutive: int = DEFAULT_CONSECUTIVE,
                 expect: int = 0, certain: float | None = None):
        if threshold < 1:
            raise InvalidArgumentError(f"the alert threshold must be at least 1 frame, got {threshold}")
        if consecutive < 1:
            raise InvalidArgumentError(f"consecutive windows must be at least 1, got {consecutive}")
        if certain is not None and not certain > 0:
            raise InvalidArgumentError(f"the certain confidence must be positive, got {certain}")
        self.threshold = int(threshold)
        self.consecutive = int(consecutive)
        self.expect = int(expect)
        self.certain = None if certain is None else float(certain)  # None: every decision needs the run
        self.alerted_offset: int | None = None  # None: in sync
        self._run: list[WindowReading] = []

    @property
    def in_sync(self) -> bool:
        return self.alerted_offset is None

    def update(self, reading: WindowReading) -> dict | None:
        if not reading.reliable or reading.offset_frames is None:
            return None
        off = abs(reading.offset_frames - self.expect) >= self.threshold
        if self.in_sync:
            joins = off
        elif off:  # out of sync: does a different steady offset begin?
            joins = abs(reading.offset_frames - self.alerted_offset) > 1
        else:  # out of sync and this one is within: toward "back in sync"
            joins = True
        if not joins:
            self._run.clear()
            return None
        if self._run and self._kind(self._run[-1]) != self._kind(reading):
            self._run.clear()
        self._run.append(reading)
        if len(self._run) < self.consecutive and not self._is_certain(reading):
            return None
        run, self._run = self._run, []
        first = run[0]
        if self.in_sync or abs(run[-1].offset_frames - self.expect) >= self.threshold:
            offset = int(round(statistics.median(r.offset_frames for r in run)))
            previous, self.alerted_offset = self.alerted_offset, offset
            return {"type": "alert", "offset_frames": offset, "expected_frames": self.expect,
                    "off_by_frames": offset - self.expect,
                    "offset_seconds": round((offset - self.expect) / TIMELINE_FPS, 3),
                    "previous_offset_frames": previous,
                    "since_stream_s": first.stream_start_s, "stream_end_s": run[-1].stream_end_s,
                    "source_start_s": first.source_start_s, "source_end_s": run[-1].source_end_s,
                    "windows": len(run), "confidence": run[-1].confidence, "wall_time": run[-1].wall_time,
                    "message": _alert_message(offset, self.expect)}
        self.alerted_offset = None
        return {"type": "back_in_sync", "offset_frames": run[-1].offset_frames, "expected_frames": self.expect,
                "since_stream_s": first.stream_start_s, "stream_end_s": run[-1].stream_end_s,
                "source_start_s": first.source_start_s, "source_end_s": run[-1].source_end_s,
                "windows": len(run), "wall_time": run[-1].wall_time,
                "message": f"back in sync (offset {run[-1].offset_frames:+d}, expected {self.expect:+d})"}

    def _is_certain(self, reading: WindowReading) -> bool:
        return self.certain is not None and reading.confidence is not None and reading.confidence >= self.certain

    def _kind(self, reading: WindowReading) -> str:
        return "off" if abs(reading.offset_frames - self.expect) >= self.threshold else "within"


def _alert_message(offset: int, expect: int) -> str:
    off = offset - expect
    lead = "sound early" if off > 0 else "sound late"
    ms = abs(off) / TIMELINE_FPS * 1000
    return f"OUT OF SYNC: offset {offset:+d} frames, {abs(off)} from the expected {expect:+d} ({lead} by {ms:.0f} ms)"


@dataclass
class MonitorOptions:
    window_s: float = 10.0
    hop_s: float = 5.0
    engine: str = "auto"
    weights: str | None = None
    max_offset: int = 15
    threshold: int = DEFAULT_THRESHOLD_FRAMES
    consecutive: int = DEFAULT_CONSECUTIVE
    #: confidence from which one window decides alone; None: the engine's fitted bar (ALERTS_PATH), if any;
    #: inf: never (always ``consecutive`` windows)
    certain: float | None = None
    expect: int = 0
    realtime: bool = False
    read_timeout: float = 10.0
    backoff: float = 1.0
    max_backoff: float = 8.0  # a stream back after an outage is rejoined within this many seconds
    give_up_after: float = 300.0
    webhook: str | None = None
    min_track_frames: int = 25
    #: when scoring is behind a live source, skip windows (True) or let the reader wait (False: every
    #: window is read, later and later; for audits and tests, while the source keeps what was not read)
    skip_when_behind: bool = True


class Monitor:
    """Watches one source until it ends or :meth:`stop`; every event goes to ``on_event``."""

    def __init__(self, source: str, options: MonitorOptions | None = None, *, on_event: EventCallback | None = None,
                 pipeline=None):
        self.source = source
        self.options = options or MonitorOptions()
        self.on_event = on_event or (lambda event: None)
        certain = self.options.certain
        self.rule = AlertRule(self.options.threshold, self.options.consecutive, self.options.expect,
                              None if certain is None or certain == float("inf") else certain)
        self._pipeline = pipeline
        self._stop = threading.Event()
        self._mailbox: queue.Queue = queue.Queue(maxsize=1)
        self.skipped = 0
        self.readings = 0
        self.alerts = 0
        self.state = "starting"
        self._skips = (is_network(source) or self.options.realtime) and self.options.skip_when_behind
        self._webhook = _Webhook(self.options.webhook, self._emit) if self.options.webhook else None
        WindowCutter(self.options.window_s, self.options.hop_s)  # checks the window and hop now

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        from .pipeline import SyncPipeline
        from .tracking import TrackingOptions

        opts = self.options
        # A monitor runs for hours, one window's work after another: fewer malloc arenas (before any
        # thread starts) and freed memory handed back after each window keep its RSS from creeping up
        # with the peaks of the windows' work.
        memory.limit_malloc_arenas()
        pipeline = self._pipeline or SyncPipeline(
            engine=opts.engine, weights=opts.weights, max_offset=opts.max_offset,
            tracking=TrackingOptions(min_track_frames=opts.min_track_frames))
        if opts.certain is None:  # the bar belongs to the engine that reads: known only now
            engines = list(getattr(pipeline, "engines", {}).values())
            self.rule.certain = certain_bar(engines[0]) if len(engines) == 1 else None
        workdir = tempfile.mkdtemp(prefix="syncnet-monitor-")
        reader = threading.Thread(target=self._read, args=(workdir,), name="monitor-reader", daemon=True)
        self.state = "running"
        reader.start()
        try:
            while True:
                item = self._mailbox.get()
                if isinstance(item, dict):  # the reader's last word
                    self._close_webhook()  # its last posts (or failures) are said before "ended"
                    self._emit({**item, "readings": self.readings, "skipped": self.skipped, "alerts": self.alerts})
                    break
                try:
                    self._score(pipeline, item)
                finally:
                    item.path.unlink(missing_ok=True)
                    memory.release_freed_memory()
        finally:
            self._stop.set()
            self._drain()
            reader.join(timeout=opts.read_timeout + 5)
            shutil.rmtree(workdir, ignore_errors=True)
            self._close_webhook()
            self.state = "stopped"

    def _close_webhook(self) -> None:
        if self._webhook is not None:
            self._webhook.close()
            self._webhook = None

    # -- reader thread ---------------------------------------------------------------------------------

    def _read(self, workdir: str) -> None:
        opts = self.options
        cutter = WindowCutter(opts.window_s, opts.hop_s, workdir)
        source = StreamSource(self.source, realtime=opts.realtime, read_timeout=opts.read_timeout,
                              backoff=opts.backoff, max_backoff=opts.max_backoff, give_up_after=opts.give_up_after,
                              stop=self._stop)
        ended = {"type": "ended", "reason": "stopped"}
        try:
            for item in source:
                if isinstance(item, SourcePacket):
                    window = cutter.add(item)
                    if window is not None:
                        self._offer(window)
                elif isinstance(item, Connection):
                    cutter.reset(item)
                elif isinstance(item, SourceEvent):
                    if item.kind in ("reconnected", "discontinuity"):
                        cutter.reset()
                    if item.kind in ("ended", "error"):
                        ended = {"type": "ended", "reason": item.detail.get("reason") or item.detail.get("message")}
                        break
                    self._emit({"type": item.kind, **item.detail})
        except Exception as exc:  # a source we cannot read on: say why, end cleanly
            ended = {"type": "ended", "reason": f"reader failed: {exc}"}
        finally:
            self._put_final(ended)

    def _offer(self, window: Window) -> None:
        """Leave ``window`` for the scorer; a window still waiting there is skipped (scoring is behind).

        A file read without ``realtime`` has no live edge to keep up with (nor a monitor told not to
        skip): the reader waits instead.
        """
        if not self._skips:
            while not self._stop.is_set():
                try:
                    self._mailbox.put(window, timeout=0.5)
                    return
                except queue.Full:
                    continue
            window.path.unlink(missing_ok=True)
            return
        try:
            self._mailbox.put_nowait(window)
            return
        except queue.Full:
            pass
        try:
            old = self._mailbox.get_nowait()
        except queue.Empty:
            old = None
        if isinstance(old, Window):
            old.path.unlink(missing_ok=True)
            self.skipped += 1
            self._emit({"type": "skipped", "window": old.index, "stream_start_s": round(old.start_s, 3),
                        "stream_end_s": round(old.end_s, 3), "skipped": self.skipped,
                        "message": "scoring is behind the stream: window skipped"})
        self._mailbox.put(window)

    def _put_final(self, item) -> None:
        while True:
            try:
                self._mailbox.put(item, timeout=0.5)
                return
            except queue.Full:
                if self._stop.is_set():
                    self._drain()

    def _drain(self) -> None:
        while True:
            try:
                old = self._mailbox.get_nowait()
            except queue.Empty:
                return
            if isinstance(old, Window):
                old.path.unlink(missing_ok=True)

    # -- scoring ---------------------------------------------------------------------------------------

    def _score(self, pipeline, window: Window) -> None:
        started = time.monotonic()
        tracks: list[dict] = []
        note = ""
        main = None
        faces = 0
        try:
            report = next(iter(pipeline.analyze(window.path).values()))
            faces = len(report.tracks)
            main = report.main
            tracks = [{"track_id": t.track_id, "offset_frames": int(t.sync.offset_frames),
                       "confidence": _round(t.sync.confidence), "reliable": bool(t.sync.reliable),
                       "bbox": t.track.bbox_summary()} for t in report.tracks]
            note = main.sync.note if main is not None else ""
        except NoFaceError:
            note = "no face"
        except NoAudioError:
            note, faces = "no audio", None
        except SyncNetError as exc:  # an undecodable window, say: this window is lost, the monitor goes on
            self._emit({"type": "window_error", "window": window.index, "message": exc.message})
            return
        now = time.monotonic()
        reliable = bool(main is not None and main.sync.reliable)
        reading = WindowReading(
            window=window.index, stream_start_s=round(window.start_s, 3), stream_end_s=round(window.end_s, 3),
            source_start_s=round(window.source_start_s, 3), source_end_s=round(window.source_end_s, 3),
            wall_time=datetime.now(timezone.utc).isoformat(timespec="milliseconds"), faces=faces,
            speaking_face=main.track_id if reliable else None,
            offset_frames=int(main.sync.offset_frames) if main is not None else None,
            confidence=_round(main.sync.confidence) if main is not None else None, reliable=reliable,
            note=note or "", latency_s=round(now - window.last_arrival, 3),
            oldest_frame_latency_s=round(now - window.first_arrival, 3), score_s=round(now - started, 3),
            skipped_so_far=self.skipped, tracks=tracks)
        self.readings += 1
        self._emit(reading.to_event())
        alert = self.rule.update(reading)
        if alert is not None:
            self.alerts += alert["type"] == "alert"
            self._emit(alert)
            if self._webhook is not None:
                self._webhook.send({"source": self.source, **alert})

    def _emit(self, event: dict) -> None:
        try:
            self.on_event(event)
        except Exception:  # a failing listener must not stop the monitor
            pass


class _Webhook:
    """POSTs alerts as JSON from its own thread, so a slow receiver never holds up scoring."""

    def __init__(self, url: str, emit: EventCallback, timeout: float = 5.0):
        from .live import validate_source

        if not url.lower().startswith(("http://", "https://")):
            raise InvalidArgumentError(f"the webhook must be an http(s) URL, got {url!r}")
        validate_source(url, allow_files=False)
        self.url, self.emit, self.timeout = url, emit, timeout
        self.queue: queue.Queue = queue.Queue(maxsize=100)
        self.thread = threading.Thread(target=self._post_all, name="monitor-webhook", daemon=True)
        self.thread.start()

    def send(self, payload: dict) -> None:
        try:
            self.queue.put_nowait(payload)
        except queue.Full:
            self.emit({"type": "webhook_failed", "message": "webhook queue full: alert not posted"})

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join(timeout=self.timeout + 1)

    def _post_all(self) -> None:
        while (payload := self.queue.get()) is not None:
            body = json.dumps(payload).encode()
            request = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    response.read()
            except Exception as exc:  # the receiver is down or refuses: say so, keep monitoring
                self.emit({"type": "webhook_failed", "message": f"{self.url}: {exc}"})


def _round(x, digits: int = 3) -> float | None:
    if x is None:
        return None
    x = float(x)
    return round(x, digits) if x == x and abs(x) != float("inf") else None


__all__ = ["AlertRule", "Monitor", "MonitorOptions", "WindowReading", "DEFAULT_THRESHOLD_FRAMES",
           "DEFAULT_CONSECUTIVE", "certain_bar"]
