"""The embedded ``landmark`` engine: lip movement from mediapipe's face mesh against the sound.

Needs no downloaded weights: mediapipe ships the face-mesh model, and the small models this engine
learns live in the package (``data/landmark_model.pt``, ``data/landmark_calibration.json``). Its
parts live in :mod:`syncnet_fcn.landmark`, one job a module; this module runs them on a track's crops.

Per face track:

1. the face mesh runs on every 224×224 crop in tracking mode (``landmark.mouth``) and gives
   pose-normalised lip features per 25 fps frame, and beside them the mouth image cut in a face frame
   fixed by the skull (``MouthRegion``), reduced to its low spatial frequencies — teeth, tongue and
   the dark of an open mouth, which the lip contour does not show;
2. the track's audio gives speech features on the same timeline (``landmark.audio_features``: for
   each of the four 10 ms steps of a frame, 13 MFCC, speech-band log energy and spectral flux);
3. the stored members (``landmark.models``) — each fitted on lip features alone or on lips plus mouth
   image — score every frame against the audio of every candidate offset with two audio–lip models:

   * a canonical correlation model (CCA): the directions in which lips and ±2 frames of sound co-vary
     linearly; the score is the product of the two projections;
   * ``LipSyncNet``, two small temporal convolution encoders trained (``landmark.training``) so that
     the cosine similarity of lip and sound embeddings peaks at the true alignment against ±8 frames;

   every model's per-frame scores are centred and scaled over the track (so they add fairly) and
   averaged. A pair whose audio lies beyond the track, or is digital silence (audio that is not
   there, such as the gap a shifted or late-starting track leaves), counts as a typical pair (score
   0), as SyncNet's zero padding does, so that barely-overlapping extreme offsets cannot win by noise;
4. ``dists = −score`` averaged over 5-frame windows gives the usual ``(windows, 2*max_offset+1)``
   matrix and :func:`syncnet_fcn.scoring.summarize` the offset, confidence and the rest
   (``landmark.reading``). Offsets are corrected by the calibrated lead of lips over sound
   (measured on training speakers by ``landmark_training``), applied as a sub-frame audio delay before scoring.

Confidence is the original's ``median(curve) − min(curve)`` — the score's gain at the best offset over
a typical one, in units of the per-frame score's spread — times the square root of the frames with a
face mesh, so that a word and a speech are judged on one scale (roughly: standard errors by which the
best offset stands out). Tracks below the calibrated ``reliable_confidence`` — the highest confidence
seen for faces paired with other clips' audio — are flagged unreliable. ``per_frame_confidence``
asks the same question of the second around each frame, at the track's offset, so that a face heard
only part of the time stands out where it is heard.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import EngineUnavailableError, InvalidArgumentError
from ..landmark.models import LandmarkModels, landmark_available, load_calibration, load_models
from ..landmark.reading import MIN_TRACK_FRAMES, local_confidence, score_track
from .base import OpenTrackScorer, SyncEngine, TrackScorer, TrackSync

__all__ = ["LandmarkEngine", "MultiAudioScorer", "landmark_available"]

# Face-mesh instances per track: one per core of the machine, at most two. Which frames each instance
# sees (and so the landmarks: an instance tracks from its previous frame) depends on this number only,
# never on the threads they run on, so a batch worker with a smaller CPU budget reads the same.
MESH_WORKERS = min(2, os.cpu_count() or 1)


def mesh_threads() -> int:
    """Threads the mesh instances run on: one each, within the process's CPU budget."""
    from ..cpu_budget import cpu_threads

    return max(1, min(MESH_WORKERS, cpu_threads()))


class _LandmarkCollector:
    """Face mesh on a track's crops as they arrive; the audio side waits for :meth:`landmarks`.

    The mesh is the engine's main cost and mediapipe runs it without holding the GIL, so chunks go
    to one mesh instance per core in turn (chunk k to instance k mod workers; at most one chunk per
    instance in flight, so each instance still sees its chunks in order). The mouth images are cut
    afterwards, in frame order, with one :class:`~syncnet_fcn.landmark.mouth.MouthRegion` for the whole track.
    Of each chunk only what the scoring reads is kept — the mesh's feature points and the mouth image's
    low frequencies, about 1 kB a frame instead of 7 — so that a track hours long fits in memory.
    The threads are the engine's (``pool``), shared by all its tracks: new threads for every track of
    an edited video would each leave the allocator another arena of memory.
    """

    def __init__(self, n_frames: int | None, pool):
        from collections import deque

        from ..landmark.mouth import FaceMeshTracker, MouthRegion

        self.n_frames = n_frames
        self._meshes = [FaceMeshTracker() for _ in range(MESH_WORKERS)]
        self._pool = pool
        self._pending: deque = deque()  # (future landmarks, crops), oldest first
        self._region = MouthRegion()
        self._landmarks: list[np.ndarray] = []
        self._appearance: list[np.ndarray] = []
        self._pushed = 0

    def push(self, crops: np.ndarray) -> None:
        while len(self._pending) >= len(self._meshes):
            self._collect_oldest()
        mesh = self._meshes[self._pushed % len(self._meshes)]
        self._pending.append((self._pool.submit(mesh.process, crops), crops))
        self._pushed += 1

    def _collect_oldest(self) -> None:
        from ..landmark.mouth import compact_landmarks, mouth_appearance

        future, crops = self._pending.popleft()
        landmarks = future.result()
        found = np.isfinite(landmarks).all(axis=(1, 2))
        self._landmarks.append(compact_landmarks(landmarks))
        self._appearance.append(mouth_appearance(self._region.extract_all(crops, landmarks), found))

    def close(self) -> None:
        from concurrent.futures import wait

        for future, _ in self._pending:
            future.cancel()
        wait([future for future, _ in self._pending])  # no mesh is closed while it runs
        self._pending.clear()
        for mesh in self._meshes:
            mesh.close()
        self._meshes = []

    def landmarks(self) -> tuple[np.ndarray, np.ndarray]:
        """``(compact landmarks (n, points, 3), mouth appearance (n, coefficients))``."""
        from ..landmark.mouth import APPEARANCE_DCT_BLOCK, FEATURE_POINTS

        try:
            while self._pending:
                self._collect_oldest()
        finally:
            self.close()
        if not self._landmarks:
            rows, cols = APPEARANCE_DCT_BLOCK
            return np.zeros((0, len(FEATURE_POINTS), 3), np.float32), np.zeros((0, rows * cols - 1), np.float32)
        landmarks = np.concatenate(self._landmarks)
        if len(landmarks) != self.n_frames:
            raise ValueError(f"track announced {self.n_frames} frames, got {len(landmarks)} crops")
        return landmarks, np.concatenate(self._appearance)


class LandmarkTrackScorer(TrackScorer):
    def __init__(self, audio: np.ndarray, n_frames: int, max_offset: int, engine: LandmarkEngine):
        self.audio = np.asarray(audio)
        self.max_offset = max_offset
        self.engine = engine
        self._collector = _LandmarkCollector(n_frames, engine.mesh_pool)

    def push(self, crops: np.ndarray) -> None:
        self._collector.push(crops)

    def finish(self) -> TrackSync:
        landmarks, appearance = self._collector.landmarks()
        return score_track(landmarks, self.audio, self.max_offset, self.engine.models, self.engine.calibration,
                           appearance=appearance)


class OpenLandmarkScorer(OpenTrackScorer):
    """A track whose length is not known yet: the face mesh runs on its crops as they come (it needs
    neither the audio nor the length), the audio side once the track has ended."""

    def __init__(self, max_offset: int, engine: LandmarkEngine):
        self.max_offset = max_offset
        self.engine = engine
        self._collector = _LandmarkCollector(None, engine.mesh_pool)

    def push(self, crops: np.ndarray) -> None:
        self._collector.push(crops)

    def finish(self, audio: np.ndarray, n_frames: int) -> TrackSync:
        try:
            self.engine._check(n_frames)
        except InvalidArgumentError:
            self._collector.close()
            raise
        self._collector.n_frames = n_frames
        landmarks, appearance = self._collector.landmarks()
        return score_track(landmarks, np.asarray(audio), self.max_offset, self.engine.models,
                           self.engine.calibration, appearance=appearance)

    def close(self) -> None:
        self._collector.close()


class MultiAudioScorer:
    """One track read against several audios (e.g. shifted copies): the face mesh runs once."""

    def __init__(self, audios, n_frames: int, max_offset: int, engine: LandmarkEngine):
        self.audios = [np.asarray(a) for a in audios]
        self.max_offset = max_offset
        self.engine = engine
        self._collector = _LandmarkCollector(n_frames, engine.mesh_pool)

    def push(self, crops: np.ndarray) -> None:
        self._collector.push(crops)

    def finish(self) -> list[TrackSync]:
        landmarks, appearance = self._collector.landmarks()
        e = self.engine
        return [score_track(landmarks, a, self.max_offset, e.models, e.calibration, appearance=appearance)
                for a in self.audios]


class LandmarkEngine(SyncEngine):
    """Lip landmarks (mediapipe face mesh) against speech features; no downloaded weights."""

    name = "landmark"
    weights = "mediapipe face mesh + embedded lip–sound models"

    def __init__(self, models: LandmarkModels | None = None, calibration: dict | None = None):
        ok, reason = landmark_available()
        if not ok:
            raise EngineUnavailableError(f"landmark engine unavailable: {reason}")
        self.models = models or load_models()
        self.calibration = calibration or load_calibration()
        self._mesh_pool = None

    @property
    def mesh_pool(self):
        """The threads every track's face meshes run on (:func:`mesh_threads`), made once."""
        if self._mesh_pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._mesh_pool = ThreadPoolExecutor(mesh_threads(), thread_name_prefix="face-mesh")
        return self._mesh_pool

    @property
    def speaking_threshold(self) -> float:
        """Per-frame confidence above which the face counts as the voice heard."""
        return float(self.calibration["speaking_threshold"])

    @property
    def relative_speaking_threshold(self) -> float | None:
        """The bar for the best-matching of several faces on screen (median wrong-pair per-frame confidence)."""
        value = self.calibration.get("relative_speaking_threshold")
        return None if value is None else float(value)

    def _per_frame_confidence(self, dists: np.ndarray, column: int, n_frames: int) -> np.ndarray:
        return local_confidence(dists, n_frames, offset_index=column)

    def _check(self, n_frames: int) -> None:
        if n_frames < MIN_TRACK_FRAMES:
            raise InvalidArgumentError(f"the landmark engine needs at least {MIN_TRACK_FRAMES} frames, got {n_frames}")

    def start_track(self, audio: np.ndarray, n_frames: int, max_offset: int = 15) -> TrackScorer:
        self._check(n_frames)
        return LandmarkTrackScorer(audio, n_frames, max_offset, self)

    def open_track(self, max_offset: int = 15) -> OpenTrackScorer:
        return OpenLandmarkScorer(max_offset, self)

    def start_tracks_multi_audio(self, audios, n_frames: int, max_offset: int = 15) -> MultiAudioScorer:
        """Like :meth:`start_track` for several audios of one track; ``finish()`` returns one reading each."""
        self._check(n_frames)
        return MultiAudioScorer(audios, n_frames, max_offset, self)

