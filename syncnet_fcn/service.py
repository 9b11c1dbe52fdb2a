"""What the web front ends share: engine choice, one loaded pipeline per engine set, upload checks,
and the analysis document both front ends display.

No detection logic lives here: everything is :class:`syncnet_fcn.pipeline.SyncPipeline`'s.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

from . import TIMELINE_FPS
from .engines import ENGINE_NAMES
from .errors import InvalidArgumentError, MediaError, NoAudioError

MAX_OFFSET_RANGE = (1, 50)
DEFAULT_MAX_OFFSET = 15


# -- engines ----------------------------------------------------------------------------------------------


def engine_status(weights: str | None = None) -> dict[str, dict]:
    """``{name: {"available", "reason", "weights"}}`` for every engine (see ``available_engines``), with
    weights named by file name and sha256 rather than by where they sit on the server."""
    from .engines import available_engines
    from .weights import public_weights_status

    return {name: public_weights_status(status) for name, status in available_engines(weights).items()}


def runnable_engines(weights: str | None = None) -> list[str]:
    """Engines that can run here, in the registry's order (what "compare every engine" means)."""
    return [name for name, status in engine_status(weights).items() if status["available"]]


def parse_engines(value: str | Sequence[str] | None, weights: str | None = None) -> list[str]:
    """Engine names from a form field: ``None``/``""``/``"all"`` → every runnable engine; ``"auto"``;
    or names separated by commas. Unknown names raise :class:`InvalidArgumentError`."""
    if value is None or isinstance(value, str):
        items = [] if value is None else [v.strip().lower() for v in value.split(",")]
    else:
        items = [str(v).strip().lower() for v in value]
    if value is not None and not isinstance(value, str) and not value:
        items = []
    elif value is not None and not any(items) and (not isinstance(value, str) or value.strip()):
        # "," or " , ": names were meant but none given; not the same as leaving the field out
        raise InvalidArgumentError(
            f"no engine name in {value!r}: give one of {', '.join(ENGINE_NAMES)}, auto or all (or leave it out)")
    items = [v for v in items if v]
    if not items or items == ["all"]:
        found = runnable_engines(weights)
        return found or ["auto"]
    unknown = [v for v in items if v not in ENGINE_NAMES and v != "auto"]
    if unknown:
        raise InvalidArgumentError(
            f"unknown engine {unknown[0]!r}: choose from {', '.join(ENGINE_NAMES)}, auto or all"
        )
    return list(dict.fromkeys(items))  # keep order, drop repeats


def parse_max_offset(value) -> int:
    """The search range in frames from a form field (default 15); 400 on anything else."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return DEFAULT_MAX_OFFSET
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"max_offset must be a whole number of frames, got {value!r}") from None
    low, high = MAX_OFFSET_RANGE
    if not number.is_integer() or not low <= number <= high:
        raise InvalidArgumentError(f"max_offset must be a whole number from {low} to {high}, got {value!r}")
    return int(number)


class PipelineCache:
    """One :class:`SyncPipeline` per (engine set, max_offset), built on first use and then shared.

    Models load once per process, not per request. A pipeline runs one video at a time (its face
    detector keeps state), so each comes with a lock; callers hold it while analysing. The oldest
    entries are dropped beyond ``max_entries`` to bound memory.
    """

    def __init__(self, weights: str | None = None, device: str = "cpu", max_entries: int = 4,
                 factory: Callable | None = None):
        self.weights = weights
        self.device = device
        self.max_entries = max_entries
        self._factory = factory
        self._entries: OrderedDict[tuple, tuple[object, threading.Lock]] = OrderedDict()
        self._lock = threading.Lock()
        self.builds = 0

    def get(self, engines: Sequence[str], max_offset: int = DEFAULT_MAX_OFFSET):
        """``(pipeline, lock)`` for this engine set; builds it the first time."""
        key = (tuple(engines), int(max_offset))
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
            factory = self._factory
            if factory is None:
                from .pipeline import SyncPipeline as factory
            pipeline = factory(engines=list(engines), weights=self.weights, max_offset=int(max_offset),
                               device=self.device)
            self.builds += 1
            self._entries[key] = (pipeline, threading.Lock())
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
            return self._entries[key]


# -- uploads ----------------------------------------------------------------------------------------------


def safe_filename(name: str | None, default: str = "upload") -> str:
    """A plain file name to store an upload under: path parts and odd characters removed."""
    base = Path((name or "").replace("\\", "/")).name
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", base).strip("._") or default
    return base[:120]


def check_video(path: str | Path):
    """Decode ``path``'s headers: it must be a video with an audio track. Returns its ``MediaInfo``.

    Raises :class:`MediaError` (415) for empty or undecodable files and files without a video
    stream, :class:`NoAudioError` (422) when there is no sound to sync against.
    """
    from .media import probe

    path = Path(path)
    if path.stat().st_size == 0:
        raise MediaError("the uploaded file is empty")
    info = probe(path)
    if not getattr(info, "has_audio", True):
        raise NoAudioError(f"{path.name} has no audio track: sync needs the sound")
    return info


# -- the analysis document --------------------------------------------------------------------------------


def describe_offset(offset_frames: int | None) -> str:
    """The offset in words, in the SyncNet convention (positive = audio early)."""
    from .report import describe_offset as words

    return "no reading" if offset_frames is None else words(int(offset_frames))


def summary_rows(reports: dict[str, dict]) -> list[dict]:
    """One row per engine and face track, main track first: what the results tables show."""
    rows = []
    for name, report in reports.items():
        tracks = sorted(report["tracks"], key=lambda t: t["track_id"] != report.get("main_track_id"))
        for track in tracks:
            offset = track["offset_frames"]
            rows.append({
                "engine": name,
                "track_id": track["track_id"],
                "main": track["track_id"] == report.get("main_track_id"),
                "frames": f"{track['start_frame']}-{track['end_frame']}",
                "offset_frames": offset,
                "offset_ms": round(offset * 1000 / (report.get("fps") or TIMELINE_FPS)),
                "description": describe_offset(offset),
                "confidence": track["confidence"],
                "min_dist": track["min_dist"],
                "reliable": track["reliable"],
                "note": track.get("note"),
                "processing_s": report.get("timings", {}).get("total_s"),
            })
    return rows


def analysis_document(reports: dict, video_name: str, engine_errors: dict[str, str] | None = None,
                      full: bool = True) -> dict:
    """Everything one analysis produced, as JSON-ready data.

    ``reports`` maps engine names to ``SyncReport`` objects (or their dicts). The report's ``video``
    field is replaced by ``video_name`` so server-side temporary paths never leak to clients.
    """
    docs = {}
    for name, report in reports.items():
        doc = report if isinstance(report, dict) else report.to_dict(full=full)
        docs[name] = {**doc, "video": video_name}
    return {
        "video": video_name,
        "engines": docs,
        "engine_errors": dict(engine_errors or {}),
        "summary": summary_rows(docs),
    }


def run_analysis(cache: PipelineCache, video: str | Path, engines: Sequence[str], max_offset: int,
                 video_name: str, progress: Callable[[str, float], None] | None = None) -> tuple[dict, dict]:
    """Analyse ``video`` with the shared pipeline for ``engines``: ``(document, reports)``.

    ``reports`` are the ``SyncReport`` objects, for callers that want the short JSON too.
    """
    pipeline, lock = cache.get(engines, max_offset)
    with lock:
        started = time.perf_counter()
        reports = pipeline.analyze(video, progress=progress)
        elapsed = time.perf_counter() - started
    document = analysis_document(reports, video_name, pipeline.engine_errors)
    document["elapsed_s"] = round(elapsed, 3)
    return document, reports
