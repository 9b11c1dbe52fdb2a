"""The detection pipeline every front end uses: video → face tracks → crops → engines → reports.

A :class:`SyncPipeline` holds its engines (models are loaded once and reused across videos). For one
video it decodes each frame once (:mod:`syncnet_fcn.single_pass`): faces are found, tracked and
cropped in the same pass, and each track's crops go, chunk by chunk, to one scorer per engine, so
several engines share the one decode. Tracks found earlier (``analyze(tracks=...)``, e.g. for many
audio shifts of one clip) only need their crops: one pass over the frames they cover.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .crops import iter_track_crops
from .engines import ENGINE_NAMES, OpenTrackScorer, SyncEngine, TrackSync, create_engine
from .errors import EngineUnavailableError, InvalidArgumentError, NoFaceError, SyncNetError
from .media import load_audio, prefetched, probe, track_audio
from .runtime import resolve_device, resolve_runtime
from .report import SyncReport, TrackResult, attribute_speakers
from .single_pass import CropChunk, TrackDropped, TrackFound, TrackOpened, iter_tracks_with_crops
from .tracking import SHORTEST_TRACK_FRAMES, FaceTrack, TrackingOptions, find_face_tracks, number_tracks
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
        device: str = "auto",
        runtime: str = "auto",
        int8: bool = False,
        tracking: TrackingOptions | None = None,
        detector: str = "mediapipe",
        progress: ProgressCallback | None = None,
    ):
        if engine is not None and engines is not None:
            raise InvalidArgumentError("give either engine or engines, not both")
        if not 1 <= int(max_offset) <= 50:
            raise InvalidArgumentError(f"max_offset must be between 1 and 50 frames, got {max_offset}")
        self.max_offset = int(max_offset)
        self.device = resolve_device(device)
        check_device(self.device)
        self.tracking = tracking or TrackingOptions()
        check_tracking_options(self.tracking)
        self.detector_name = detector
        self.progress = progress
        self.engines: dict[str, SyncEngine] = {}
        self.engine_errors: dict[str, str] = {}

        self.runtime = resolve_runtime(runtime, self.device, int8)
        names = list(engines) if engines is not None else [engine or "auto"]
        for name in names:
            if name not in ENGINE_NAMES and name != "auto":
                raise InvalidArgumentError(
                    f"unknown engine {name!r}: choose from {', '.join(ENGINE_NAMES)} or auto"
                )
        strict = engines is None
        for name in names:
            try:
                built = create_engine(name, weights=weights, device=self.device, runtime=self.runtime, int8=int8)
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
        self._warm_up()

    def _warm_up(self) -> None:
        """Load now what the first video would otherwise load on its way: the face detector's graph,
        the scene detector, the speech-feature and scipy tools the readings use (about a second
        together, more on a busy machine). Paid once per pipeline, with the models, it is not
        counted against a video, and in the one pass it no longer delays the first track's reading."""
        import python_speech_features  # noqa: F401
        import scenedetect.detectors  # noqa: F401
        from scipy.fft import dct  # noqa: F401

        from . import scoring  # noqa: F401  (scipy.signal)

        self._face_detector()

    # -- stages ---------------------------------------------------------------------------------------

    def _face_detector(self):
        if self._detector is None:
            from detectors import create_detector

            self._detector = create_detector(self.detector_name, min_confidence=self.tracking.min_confidence)
        return self._detector

    def find_tracks(self, video: str | Path, progress: ProgressCallback | None = None) -> list[FaceTrack]:
        """Every face track in ``video`` (may be empty)."""
        progress = progress or self.progress
        hook = None
        if progress is not None:
            hook = lambda done, total: progress("tracks", min(1.0, done / max(total, 1)))  # noqa: E731
        return find_face_tracks(video, detector=self._face_detector(), options=self.tracking, progress=hook)

    def _tracks_and_crops(self, video, tracks: list[FaceTrack] | None, progress: ProgressCallback | None):
        """``TrackFound`` / ``CropChunk`` events: one decoding pass, or crops of ``tracks`` found earlier."""
        if tracks is None:
            hook = None
            if progress is not None:
                hook = lambda done, total: progress("tracks", min(1.0, done / max(total, 1)))  # noqa: E731
            yield from iter_tracks_with_crops(video, detector=self._face_detector(), options=self.tracking,
                                              size=224, chunk=CROP_CHUNK, progress=hook, early=True)
            return
        for track in tracks:
            yield TrackFound(track.track_id, track)
        for track_id, first, crops in iter_track_crops(video, tracks, size=224, chunk=CROP_CHUNK):
            yield CropChunk(track_id, first, crops)

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
        one_pass = tracks is None
        found, readings, engine_time, waited = self._read_tracks(video, tracks, audio, progress)
        timings = {"tracks_s": waited if one_pass else 0.0, "crops_s": 0.0 if one_pass else waited}
        if not found:
            raise NoFaceError(self._no_face_message(video, info))
        key_of = {id(track): key for key, track in found.items()}
        tracks = number_tracks(list(found.values())) if one_pass else tracks

        results: dict[str, list[TrackResult]] = {
            name: [TrackResult(track, readings[(key_of[id(track)], name)], engine.speaking_threshold)
                   for track in tracks]
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

    def _read_tracks(self, video, tracks: list[FaceTrack] | None, audio: np.ndarray,
                     progress: ProgressCallback | None):
        """Every engine's reading of every track: ``({key: FaceTrack}, {(key, engine): TrackSync},
        {engine: seconds spent}, seconds spent waiting for the decoding pass)``.

        Faces are found and cropped in one decoding pass in a background thread (or, with ``tracks``
        given, only cropped) while the engines read the crops. In the one pass a track's crops come
        while the face is still being followed (``TrackOpened``, crops, then ``TrackFound`` once it
        has ended): the engines' open scorers (:meth:`SyncEngine.open_track`) work on them as the
        video decodes, and get the track's audio when it is known. A track's scorers start with its
        first crops and are finished, and dropped, after its last: an engine's working data (a face
        mesh per core, a track's audio features) lives only while its track is on screen, so an
        edited video's hundreds of shots cost no more than one.
        """
        found: dict[int, FaceTrack] = {}
        remaining: dict[int, int] = {}  # known tracks (``tracks`` given): crops still to come
        scorers: dict[tuple[int, str], object] = {}
        readings: dict[tuple[int, str], TrackSync] = {}
        engine_time = dict.fromkeys(self.engines, 0.0)

        def start(key: int, name: str):
            if key in found:  # a known track: its audio and length are known from the start
                track = found[key]
                span = track_audio(audio, track.start_frame, track.n_frames)
                return self.engines[name].start_track(span, track.n_frames, self.max_offset)
            return self.engines[name].open_track(self.max_offset)

        def finish(key: int) -> None:
            track = found[key]
            for name in self.engines:
                t1 = time.perf_counter()
                scorer = scorers.pop((key, name), None)
                if scorer is None:  # no crops came for this track
                    scorer = start(key, name)
                if isinstance(scorer, OpenTrackScorer):
                    span = track_audio(audio, track.start_frame, track.n_frames)
                    readings[(key, name)] = scorer.finish(span, track.n_frames)
                else:
                    readings[(key, name)] = scorer.finish()
                engine_time[name] += time.perf_counter() - t1

        pushed, shown = 0, 0.0
        decoded = [0.0]  # one pass: share of the video decoded, which the engines keep pace with
        pass_progress = progress
        if progress is not None and tracks is None:
            def pass_progress(stage: str, fraction: float) -> None:
                decoded[0] = fraction
                progress(stage, fraction)
        t0 = time.perf_counter()
        for event in prefetched(self._tracks_and_crops(video, tracks, pass_progress), depth=2):
            if isinstance(event, TrackOpened):
                continue  # scorers start with the first crops
            if isinstance(event, TrackDropped):
                for name in self.engines:
                    scorer = scorers.pop((event.key, name), None)
                    if scorer is not None:
                        scorer.close()
                continue
            if isinstance(event, TrackFound):
                found[event.key] = event.track
                if tracks is None:  # one pass: every crop of the track came before
                    finish(event.key)
                else:
                    remaining[event.key] = event.track.n_frames
                continue
            key = event.key
            for name in self.engines:
                t1 = time.perf_counter()
                if (key, name) not in scorers:
                    scorers[(key, name)] = start(key, name)
                scorers[(key, name)].push(event.crops)
                engine_time[name] += time.perf_counter() - t1
            pushed += len(event.crops)
            if key in remaining:
                remaining[key] -= len(event.crops)
                if remaining[key] <= 0:
                    finish(key)
            if progress is not None:
                # share of the crops of the tracks known so far (one pass: of the video decoded);
                # never shown going back
                done = decoded[0] if tracks is None else pushed / max(sum(t.n_frames for t in found.values()), 1)
                shown = max(shown, min(1.0, done))
                progress("sync", shown)
        # what the engines spent starting, feeding and finishing tracks is theirs; the rest was waiting
        waited = time.perf_counter() - t0 - sum(engine_time.values())
        for key in found:
            if (key, next(iter(self.engines))) not in readings:
                finish(key)  # fewer crops than announced: the scorer says what it makes of them
        for scorer in scorers.values():  # opened, never found nor dropped (cannot happen): let go
            if isinstance(scorer, OpenTrackScorer):
                scorer.close()
        return found, readings, engine_time, waited

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
