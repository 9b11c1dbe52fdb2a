"""The detection pipeline every front end uses: video → face tracks → crops → engines → reports.

A :class:`SyncPipeline` holds its engines (models are loaded once and reused across videos). For one
video it decodes twice, never holding more than a chunk of frames: a low-resolution pass that finds
and tracks faces, then a full-resolution pass that cuts each track's crops and pushes them, chunk by
chunk, to one scorer per engine, so several engines share the one decode.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .crops import iter_track_crops
from .engines import ENGINE_NAMES, SyncEngine, TrackScorer, TrackSync, create_engine
from .errors import EngineUnavailableError, InvalidArgumentError, NoFaceError, SyncNetError
from .media import load_audio, prefetched, probe, track_audio
from .report import SyncReport, TrackResult, attribute_speakers
from .tracking import SHORTEST_TRACK_FRAMES, FaceTrack, TrackingOptions, find_face_tracks
from .weights import weights_label

#: progress(stage, fraction): stage is "tracks" or "sync"; fraction runs 0 → 1 within a stage.
ProgressCallback = Callable[[str, float], None]

CROP_CHUNK = 128


class SyncPipeline:
    """Sync analysis of videos with one or more engines.

    >>> pipe = SyncPipeline(engine="auto")
    >>> report = pipe.run("talk.mp4")
    >>> report.offset_frames, report.confidence

    ``engines=[...]`` builds several engines; those that cannot run here are left out and their reasons
    kept in :attr:`engine_errors` (with a single ``engine`` the error is raised instead).
    """

    def __init__(
        self,
        engine: str | None = None,
        *,
        engines: Sequence[str] | None = None,
        weights: str | None = None,
        max_offset: int = 15,
        device: str = "cpu",
        tracking: TrackingOptions | None = None,
        detector: str = "mediapipe",
        progress: ProgressCallback | None = None,
    ):
        if engine is not None and engines is not None:
            raise InvalidArgumentError("give either engine or engines, not both")
        if not 1 <= int(max_offset) <= 50:
            raise InvalidArgumentError(f"max_offset must be between 1 and 50 frames, got {max_offset}")
        self.max_offset = int(max_offset)
        check_device(device)
        self.tracking = tracking or TrackingOptions()
        check_tracking_options(self.tracking)
        self.detector_name = detector
        self.progress = progress
        self.engines: dict[str, SyncEngine] = {}
        self.engine_errors: dict[str, str] = {}

        names = list(engines) if engines is not None else [engine or "auto"]
        for name in names:
            if name not in ENGINE_NAMES and name != "auto":
                raise InvalidArgumentError(
                    f"unknown engine {name!r}: choose from {', '.join(ENGINE_NAMES)} or auto"
                )
        strict = engines is None
        for name in names:
            try:
                built = create_engine(name, weights=weights, device=device)
            except SyncNetError as exc:
                if strict:
                    raise
                self.engine_errors[name] = exc.message
                continue
            self.engines.setdefault(built.name, built)
        if not self.engines:
            reasons = "; ".join(f"{k}: {v}" for k, v in self.engine_errors.items())
            raise EngineUnavailableError(f"none of the requested engines can run here ({reasons})")
        self._detector = None

    # -- stages ---------------------------------------------------------------------------------------

    def find_tracks(self, video: str | Path, progress: ProgressCallback | None = None) -> list[FaceTrack]:
        """Every face track in ``video`` (may be empty)."""
        progress = progress or self.progress
        if self._detector is None:
            from detectors import create_detector

            self._detector = create_detector(self.detector_name, min_confidence=self.tracking.min_confidence)
        hook = None
        if progress is not None:
            hook = lambda done, total: progress("tracks", min(1.0, done / max(total, 1)))  # noqa: E731
        return find_face_tracks(video, detector=self._detector, options=self.tracking, progress=hook)

    def analyze(
        self,
        video: str | Path,
        *,
        tracks: list[FaceTrack] | None = None,
        audio: np.ndarray | None = None,
        progress: ProgressCallback | None = None,
    ) -> dict[str, SyncReport]:
        """Run every engine on ``video``; ``{engine name: SyncReport}``.

        ``tracks`` reuses tracks found earlier (e.g. for several audio shifts of one clip); ``audio``
        replaces the file's audio (int16 mono 16 kHz on the video's timeline).
        """
        progress = progress or self.progress
        started = time.perf_counter()
        info = probe(video)
        if audio is None:
            audio = load_audio(video)
        timings = {}
        t0 = time.perf_counter()
        if tracks is None:
            tracks = self.find_tracks(video, progress=progress)
        timings["tracks_s"] = time.perf_counter() - t0
        if not tracks:
            raise NoFaceError(self._no_face_message(video, info))

        readings, engine_time, timings["crops_s"] = self._read_tracks(video, tracks, audio, progress)

        results: dict[str, list[TrackResult]] = {
            name: [TrackResult(track, readings[(track.track_id, name)], engine.speaking_threshold) for track in tracks]
            for name, engine in self.engines.items()
        }
        for name, engine in self.engines.items():
            attribute_speakers(results[name], engine.relative_speaking_threshold, engine.per_frame_confidence_at)
        total = time.perf_counter() - started

        reports = {}
        for name, engine in self.engines.items():
            reports[name] = SyncReport(
                video=str(video),
                engine=name,
                weights=weights_label(engine.weights),
                duration_s=info.duration_s,
                max_offset=self.max_offset,
                tracks=results[name],
                timings={**timings, "engine_s": engine_time[name], "total_s": total},
                warning=info.damage_note,
            )
        return reports

    def _no_face_message(self, video, info) -> str:
        """What was looked for: the track length actually required (short clips need less) and the size filter."""
        options = self.tracking
        needed = min(options.min_track_frames, max(SHORTEST_TRACK_FRAMES, int(0.8 * info.n_frames)))
        message = f"no face track of at least {needed} frames"
        if options.min_face_size > 0:
            message += (f" with a mean face size of at least {options.min_face_size:g} px "
                        "(the minimum face size asked for)")
        message += f" found in {Path(video).name} ({info.duration_s:.2f} s)"
        if info.damage_note:
            message += f"; {info.damage_note}"
        return message

    def _read_tracks(self, video, tracks: list[FaceTrack], audio: np.ndarray, progress: ProgressCallback | None):
        """Every engine's reading of every track: ``({(track_id, engine): TrackSync}, {engine: seconds
        spent}, seconds spent waiting for crops)``.

        A track's scorers start with its first crops and are finished, and dropped, after its last:
        an engine's working data (a face mesh per core, a track's audio features) lives only while
        its track is on screen, so an edited video's hundreds of shots cost no more than one.
        """
        by_id = {track.track_id: track for track in tracks}
        remaining = {track.track_id: track.n_frames for track in tracks}
        scorers: dict[tuple[int, str], TrackScorer] = {}
        readings: dict[tuple[int, str], TrackSync] = {}
        engine_time = dict.fromkeys(self.engines, 0.0)

        def start(track: FaceTrack, name: str) -> TrackScorer:
            span = track_audio(audio, track.start_frame, track.n_frames)
            return self.engines[name].start_track(span, track.n_frames, self.max_offset)

        def finish(track: FaceTrack) -> None:
            for name in self.engines:
                t1 = time.perf_counter()
                scorer = scorers.pop((track.track_id, name), None)
                if scorer is None:  # no crops came for this track
                    scorer = start(track, name)
                readings[(track.track_id, name)] = scorer.finish()
                engine_time[name] += time.perf_counter() - t1

        total_frames = sum(t.n_frames for t in tracks)
        pushed = 0
        t0 = time.perf_counter()
        crop_chunks = iter_track_crops(video, tracks, size=224, chunk=CROP_CHUNK)
        for track_id, _first, crops in prefetched(crop_chunks, depth=2):
            track = by_id[track_id]
            for name in self.engines:
                t1 = time.perf_counter()
                if (track_id, name) not in scorers:
                    scorers[(track_id, name)] = start(track, name)
                scorers[(track_id, name)].push(crops)
                engine_time[name] += time.perf_counter() - t1
            remaining[track_id] -= len(crops)
            if remaining[track_id] <= 0:
                finish(track)
            pushed += len(crops)
            if progress is not None:
                progress("sync", min(1.0, pushed / max(total_frames, 1)))
        # time spent waiting for crops (decoding runs ahead in a thread): what the engines spent
        # starting, fed and finishing tracks is theirs
        waited = time.perf_counter() - t0 - sum(engine_time.values())
        for track in tracks:
            if (track.track_id, next(iter(self.engines))) not in readings:
                finish(track)  # fewer crops than announced: the scorer says what it makes of them
        return readings, engine_time, waited

    def run(self, video: str | Path, **kwargs) -> SyncReport:
        """The report of the first (or only) engine."""
        reports = self.analyze(video, **kwargs)
        return next(iter(reports.values()))


def check_device(device: str) -> None:
    """Refuse a torch device that does not exist here before any model loads (InvalidArgumentError)."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise InvalidArgumentError(f"unknown device {device!r}: use cpu, cuda, cuda:N or mps") from None
    if parsed.type == "cpu":
        return
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise InvalidArgumentError(f"device {device!r} asked for, but no CUDA GPU is usable here: use cpu")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise InvalidArgumentError(
                f"device {device!r} asked for, but only {torch.cuda.device_count()} CUDA GPU(s) are present")
        return
    if parsed.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise InvalidArgumentError(f"device {device!r} asked for, but Apple's MPS is not available here: use cpu")
        return
    raise InvalidArgumentError(f"device {device!r} is not supported: use cpu, cuda, cuda:N or mps")


def check_tracking_options(options: TrackingOptions) -> None:
    """Refuse tracking settings that cannot mean anything (InvalidArgumentError)."""
    if not options.min_track_frames >= 1:
        raise InvalidArgumentError(f"the minimum track length must be at least 1 frame, got {options.min_track_frames}")
    if not 0 <= options.min_face_size < float("inf"):
        raise InvalidArgumentError(f"the minimum face size must be a number of pixels >= 0, "
                                   f"got {options.min_face_size}")
