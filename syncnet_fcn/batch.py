"""Batch evaluation: LSE-C / LSE-D of many videos, per video and face track, grouped and aggregated.

The Wav2Lip protocol: run the SyncNet pipeline on every video; per face track the confidence (LSE-C)
and the minimum mean distance (LSE-D) over the ±``max_offset`` search; a video's numbers are the mean
over its tracks with a reading, a group's the mean over its videos. Videos that cannot be scored (no
face, no audio, unreadable, no reading) stay in the table as rows that say why, and are counted.

    jobs = collect_videos(["real/", "methodA/*.mp4"], group_by="folder")
    batch = run_batch(jobs, EvalOptions(engine="landmark"), cache=ResultCache.default())
    batch.groups                 # {"real": {...aggregate...}, "methodA": {...}}

The work itself (one video → one :class:`VideoResult`) is :func:`score_video`; where it runs (this
process, worker processes, a Ray cluster) is :mod:`syncnet_fcn.batch_backends`' business and never
changes a number. Finished results are cached by file content, engine, weights and options, so a
re-run, or a run after an interruption, only does what is missing (:mod:`syncnet_fcn.batch_cache`).
"""

from __future__ import annotations

import glob
import math
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import __version__
from .batch_backends import WorkerDied, create_backend
from .batch_cache import ResultCache, file_sha256, weights_fingerprint
from .errors import InvalidArgumentError, MediaError, NoAudioError, NoFaceError, SyncNetError
from .media import VIDEO_SUFFIXES

#: a video's status: ``ok`` (scored) or why it was not
STATUSES = ("ok", "no_face", "no_reading", "no_audio", "unreadable", "failed")
#: statuses that come from the file itself and are cached like a score (a crash or a dead worker is not)
DETERMINISTIC_FAILURES = ("no_face", "no_reading", "no_audio", "unreadable")

GROUP_BY = ("none", "folder")


# -- what to score ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoJob:
    path: Path
    group: str


def collect_videos(paths: Sequence[str | os.PathLike], group_by: str = "none") -> list[VideoJob]:
    """Files, folders (their videos, recursively) and globs → one job per distinct file, in order.

    A named file is kept whatever its suffix (an unreadable one becomes a failed row); in folders and
    globs only video suffixes count. ``group_by="folder"``: the group is the folder the video sits in,
    named relative to the folder given on the command line when there is one. A path that names
    nothing raises :class:`InvalidArgumentError`.
    """
    if group_by not in GROUP_BY:
        raise InvalidArgumentError(f"group_by must be one of {', '.join(GROUP_BY)}, got {group_by!r}")
    if not paths:
        raise InvalidArgumentError("give at least one video, folder or glob")
    jobs: list[VideoJob] = []
    seen: set[Path] = set()

    def add(path: Path, root: Path | None) -> None:
        key = path.resolve()
        if key in seen:
            return
        seen.add(key)
        jobs.append(VideoJob(path, _group_of(path, root, group_by)))

    for raw in paths:
        text = os.fspath(raw)
        path = Path(text)
        if path.is_dir():
            for found in _videos_below(path):
                add(found, path)
        elif path.exists():
            add(path, None)
        elif glob.has_magic(text):
            matches = sorted(Path(m) for m in glob.glob(text, recursive=True))
            videos = [m for m in matches if m.is_file() and m.suffix.lower() in VIDEO_SUFFIXES]
            if not videos:
                raise InvalidArgumentError(f"no video matches {text}")
            for found in videos:
                add(found, None)
        else:
            raise InvalidArgumentError(f"no such file or folder: {text}")
    if not jobs:
        raise InvalidArgumentError("no video files found in " + ", ".join(os.fspath(p) for p in paths))
    return jobs


def _videos_below(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)


def _group_of(path: Path, root: Path | None, group_by: str) -> str:
    if group_by == "none":
        return "all"
    if root is not None:
        relative = path.parent.relative_to(root)
        name = root.resolve().name if relative == Path(".") else f"{root.resolve().name}/{relative.as_posix()}"
        return name or "."
    return path.parent.resolve().name or "."


# -- one video ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalOptions:
    """Everything that changes a number (and so the cache key), apart from the file and the weights."""

    engine: str = "auto"
    weights: str | None = None
    max_offset: int = 15
    min_track_frames: int = 25
    min_face_size: float = 0.0
    device: str = "cpu"

    def key_fields(self) -> dict:
        fields = asdict(self)
        fields.pop("weights")  # the weights count by content (weights_sha256), not by name
        fields.pop("device")
        return fields


@dataclass
class VideoResult:
    """One video's row: the main track's reading, LSE-C / LSE-D over its tracks, and each track."""

    video: str
    group: str
    status: str
    reason: str | None = None
    engine: str | None = None
    lse_c: float | None = None
    lse_d: float | None = None
    offset_frames: int | None = None
    confidence: float | None = None
    reliable: bool = False
    frames: int = 0
    duration_s: float | None = None
    tracks: list[dict] = field(default_factory=list)
    sha256: str | None = None
    elapsed_s: float | None = None
    cached: bool = False

    @property
    def name(self) -> str:
        return Path(self.video).name

    @property
    def scored(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> VideoResult:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def result_from_report(report, job: VideoJob) -> VideoResult:
    """A :class:`VideoResult` from one engine's ``SyncReport``."""
    tracks = []
    for result in report.tracks:
        sync = result.sync
        lse_d = _finite(sync.min_dist)
        tracks.append({
            "track_id": int(result.track_id),
            "start_frame": int(result.track.start_frame),
            "end_frame": int(result.track.end_frame),
            "frames": int(result.track.n_frames),
            "offset_frames": int(sync.offset_frames),
            "lse_c": _finite(sync.confidence) if lse_d is not None else None,
            "lse_d": lse_d,
            "reliable": bool(sync.reliable),
            "note": sync.note,
        })
    read = [t for t in tracks if t["lse_d"] is not None and t["lse_c"] is not None]
    main = report.main
    row = VideoResult(
        video=str(job.path), group=job.group, status="ok", engine=report.engine,
        frames=sum(t["frames"] for t in tracks), duration_s=round(float(report.duration_s), 3), tracks=tracks,
        elapsed_s=round(float(report.timings.get("total_s", 0.0)), 3),
    )
    if not read:
        notes = "; ".join(sorted({t["note"] for t in tracks if t["note"]})) or "no track gave a reading"
        row.status, row.reason = "no_reading", notes
        return row
    row.lse_c = float(np.mean([t["lse_c"] for t in read]))
    row.lse_d = float(np.mean([t["lse_d"] for t in read]))
    row.offset_frames = int(main.sync.offset_frames)
    row.confidence = _finite(main.sync.confidence)
    row.reliable = bool(main.sync.reliable)
    return row


def failed_result(job: VideoJob, exc: BaseException) -> VideoResult:
    """The row of a video that could not be scored, with the reason in words."""
    if isinstance(exc, NoFaceError):
        status = "no_face"
    elif isinstance(exc, NoAudioError):
        status = "no_audio"
    elif isinstance(exc, MediaError):
        status = "unreadable"
    else:
        status = "failed"
    reason = exc.message if isinstance(exc, SyncNetError) else f"{type(exc).__name__}: {exc}"
    return VideoResult(video=str(job.path), group=job.group, status=status, reason=reason)


# per process: one loaded pipeline per option set (workers load their model once), with a lock, since a
# pipeline reads one video at a time (threads of a web server may share it)
_PIPELINES: dict = {}
_PIPELINES_LOCK = threading.Lock()


def pipeline_for(options: EvalOptions):
    """``(pipeline, lock)``: the process's pipeline for ``options``, built the first time it is asked for."""
    with _PIPELINES_LOCK:
        entry = _PIPELINES.get(options)
        if entry is None:
            from .pipeline import SyncPipeline
            from .tracking import TrackingOptions

            tracking = TrackingOptions(min_track_frames=options.min_track_frames,
                                       min_face_size=options.min_face_size)
            pipeline = SyncPipeline(engine=options.engine, weights=options.weights, max_offset=options.max_offset,
                                    device=options.device, tracking=tracking)
            entry = _PIPELINES[options] = (pipeline, threading.Lock())
    return entry


def score_video(job: VideoJob, options: EvalOptions) -> VideoResult:
    """Score one video; every failure that comes from the file becomes a row, never an exception.

    Engine or weights problems (:class:`~syncnet_fcn.errors.WeightsError`, unavailable engine) are
    the whole batch's, not the video's: they are raised. Anything else unexpected becomes a ``failed``
    row with the exception in its reason (not cached, so a fixed bug rescores it).
    """
    from .errors import EngineUnavailableError, WeightsError

    pipeline, lock = pipeline_for(options)
    try:
        if not job.path.is_file():
            raise MediaError(f"{job.path} is not a readable file")
        with lock:
            report = pipeline.run(job.path)
        return result_from_report(report, job)
    except (WeightsError, EngineUnavailableError):
        raise
    except Exception as exc:  # noqa: BLE001 - one bad file (or a bug it trips) must not stop the batch
        return failed_result(job, exc)


# -- the batch ----------------------------------------------------------------------------------------------


@dataclass
class BatchResult:
    """Every video's row (in input order) and the aggregate per group and over all videos."""

    videos: list[VideoResult]
    engine: str
    weights_sha256: str
    options: EvalOptions
    wall_s: float = 0.0
    computed: int = 0  # videos scored in this run (the rest came from the cache)

    @property
    def groups(self) -> dict[str, dict]:
        by_group: dict[str, list[VideoResult]] = {}
        for row in self.videos:
            by_group.setdefault(row.group, []).append(row)
        return {name: aggregate(rows) for name, rows in by_group.items()}

    @property
    def overall(self) -> dict:
        return aggregate(self.videos)

    @property
    def failed(self) -> list[VideoResult]:
        return [row for row in self.videos if not row.scored]

    def to_dict(self) -> dict:
        return {
            "engine": self.engine, "weights_sha256": self.weights_sha256, "options": asdict(self.options),
            "version": __version__, "wall_s": round(self.wall_s, 3), "computed": self.computed,
            "overall": self.overall, "groups": self.groups, "videos": [row.to_dict() for row in self.videos],
        }


#: progress(done, total, cached): called after each video
BatchProgress = Callable[[int, int, int], None]


def run_batch(jobs: Sequence[VideoJob], options: EvalOptions, *, cache: ResultCache | None = None,
              backend: str = "local", workers: int | str | None = None, address: str | None = None,
              threads: int | None = None, progress: BatchProgress | None = None,
              scorer: Callable | None = None) -> BatchResult:
    """Score ``jobs`` (cached ones are not redone) and aggregate.

    ``workers``: 0 scores in this process, N in N worker processes (or Ray tasks) sharing the cores,
    ``"auto"`` one per core when there is more than one video to score; ``None`` is the backend's
    default (in this process locally; :func:`syncnet_fcn.batch_backends.create_backend`).
    ``threads``: each worker's CPU budget (default: its share of the cores).
    ``scorer(job, options) -> VideoResult`` replaces :func:`score_video` (it must be picklable for
    worker processes or Ray). Each result is cached as soon as it arrives, so an interrupted run keeps
    what it finished.
    """
    import time

    started = time.perf_counter()
    engine, weights_sha = weights_fingerprint(options.engine, options.weights)
    rows: list[VideoResult | None] = [None] * len(jobs)
    keys: list[str | None] = [None] * len(jobs)
    digests: list[str | None] = [None] * len(jobs)
    todo: list[int] = []
    for index, job in enumerate(jobs):
        try:
            digest = digests[index] = file_sha256(job.path)
        except OSError as exc:
            rows[index] = VideoResult(str(job.path), job.group, "unreadable", f"cannot read the file: {exc.strerror}")
            continue
        keys[index] = ResultCache.key(digest, engine, weights_sha, options)
        hit = cache.get(keys[index]) if cache is not None else None
        if hit is not None:
            rows[index] = VideoResult.from_dict({**hit, "video": str(job.path), "group": job.group, "cached": True,
                                                 "sha256": digest})
        else:
            todo.append(index)
    done = len(jobs) - len(todo)
    total = len(jobs)
    if progress is not None:
        progress(done, total, done)

    def finished(index: int, row: VideoResult | WorkerDied) -> None:
        nonlocal done
        if isinstance(row, WorkerDied):
            row = VideoResult(video="", group="", status="failed",
                              reason=f"the worker scoring it died {row.attempts} times")
        row.video, row.group, row.cached, row.sha256 = str(jobs[index].path), jobs[index].group, False, digests[index]
        rows[index] = row
        if cache is not None and keys[index] is not None and (row.scored or row.status in DETERMINISTIC_FAILURES):
            cache.put(keys[index], row)
        done += 1
        if progress is not None:
            progress(done, total, total - len(todo))

    if todo:
        runner = create_backend(backend, workers=workers, address=address, threads=threads, videos=len(todo))
        runner.run([(i, jobs[i]) for i in todo], options, scorer or score_video, finished)
    return BatchResult(videos=[r for r in rows if r is not None], engine=engine, weights_sha256=weights_sha,
                       options=options, wall_s=time.perf_counter() - started, computed=len(todo))


# -- aggregate ------------------------------------------------------------------------------------------------


def aggregate(rows: Iterable[VideoResult]) -> dict:
    """Counts by status, and for LSE-C / LSE-D over the scored videos: mean, median, std and the 95 %
    interval of the mean (Student's t). Unscored videos are counted, never silently dropped."""
    rows = list(rows)
    scored = [row for row in rows if row.scored]
    out = {"videos": len(rows), "scored": len(scored)}
    for status in STATUSES[1:]:
        out[status] = sum(row.status == status for row in rows)
    out["reliable"] = sum(row.reliable for row in scored)
    out["lse_c"] = describe([row.lse_c for row in scored])
    out["lse_d"] = describe([row.lse_d for row in scored])
    offsets = [abs(row.offset_frames) for row in scored if row.offset_frames is not None]
    out["mean_abs_offset"] = float(np.mean(offsets)) if offsets else None
    return out


def describe(values: Sequence[float]) -> dict:
    """mean, median, std (n − 1) and the 95 % t-interval of the mean; ``None`` where undefined."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    n = int(x.size)
    if n == 0:
        return {"n": 0, "mean": None, "median": None, "std": None, "ci95": None}
    mean = float(x.mean())
    if n < 2:
        return {"n": n, "mean": mean, "median": float(np.median(x)), "std": None, "ci95": None}
    from scipy.special import stdtrit  # Student's t quantile (scipy.stats takes seconds to import)

    std = float(x.std(ddof=1))
    half = float(stdtrit(n - 1, 0.975)) * std / math.sqrt(n)
    return {"n": n, "mean": mean, "median": float(np.median(x)), "std": std, "ci95": [mean - half, mean + half]}


def _finite(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None
