"""The interface every sync engine implements, and the per-track result it returns.

The pipeline decodes a video once and pushes each face track's crops, chunk by chunk, to one
:class:`TrackScorer` per engine; nothing holds a whole track's frames. An engine turns crops and the
track's audio into a distance matrix ``dists[window, shift]`` (lower = better match) and
:mod:`syncnet_fcn.scoring` turns that into the original SyncNet numbers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ..track_sync import TrackSync

__all__ = ["OpenTrackScorer", "SyncEngine", "TrackScorer", "TrackSync"]


class TrackScorer(ABC):
    """Receives one track's crops in order; :meth:`finish` returns the reading."""

    @abstractmethod
    def push(self, crops: np.ndarray) -> None:
        """Next consecutive crops of the track, ``(n, 224, 224, 3)`` uint8 BGR."""

    @abstractmethod
    def finish(self) -> TrackSync:
        """All crops pushed: compute and return the reading."""


class OpenTrackScorer(ABC):
    """Receives a track's crops before the track's length (and so its audio) is known: the pipeline
    feeds crops while the decoder still follows the face, and the engine's work overlaps decoding.
    :meth:`finish` gets the track's audio and length once the track has ended."""

    @abstractmethod
    def push(self, crops: np.ndarray) -> None:
        """Next consecutive crops of the track, ``(n, 224, 224, 3)`` uint8 BGR."""

    @abstractmethod
    def finish(self, audio: np.ndarray, n_frames: int) -> TrackSync:
        """All ``n_frames`` crops pushed; ``audio`` is the track's span (as for :meth:`SyncEngine.start_track`)."""

    def close(self) -> None:
        """The track was dropped (e.g. too small a face): let go of the working data."""


class _BufferedOpenScorer(OpenTrackScorer):
    """For engines without a streaming path: keeps the crops until the track is known."""

    def __init__(self, engine: "SyncEngine", max_offset: int):
        self.engine, self.max_offset, self.crops = engine, max_offset, []

    def push(self, crops: np.ndarray) -> None:
        self.crops.append(crops)

    def finish(self, audio: np.ndarray, n_frames: int) -> TrackSync:
        scorer = self.engine.start_track(audio, n_frames, self.max_offset)
        while self.crops:
            scorer.push(self.crops.pop(0))
        return scorer.finish()

    def close(self) -> None:
        self.crops = []


class SyncEngine(ABC):
    name: str = "?"
    #: human-readable description of the weights (path, registry name) for the report
    weights: str | None = None
    #: per-frame confidence above which a face counts as the one speaking ("who speaks when")
    speaking_threshold: float = 1.5
    #: lower bar for the best-matching of several faces on screen at once (a typical foreign voice's
    #: per-frame confidence); None: not measured for this engine, so faces are judged one by one
    relative_speaking_threshold: float | None = None

    def per_frame_confidence_at(self, sync: TrackSync, offset_frames: int) -> np.ndarray | None:
        """``sync``'s per-frame confidence judged at another offset (one value per track frame), or
        None when the engine cannot say. Used to hear a face at the offset of the video's main face."""
        if sync.dists is None or sync.min_dist is None:
            return None
        column = (sync.dists.shape[1] - 1) // 2 - offset_frames
        return self._per_frame_confidence(sync.dists, column, len(sync.per_frame_confidence))

    def _per_frame_confidence(self, dists: np.ndarray, column: int, n_frames: int) -> np.ndarray:
        """The engine's per-frame confidence at column ``column`` of ``dists``: the original's formula."""
        from ..scoring import per_frame_confidence

        return per_frame_confidence(dists, column, n_frames)

    @abstractmethod
    def start_track(self, audio: np.ndarray, n_frames: int, max_offset: int = 15) -> TrackScorer:
        """Begin a track of ``n_frames`` frames whose audio is exactly ``audio``.

        ``audio`` is int16 mono 16 kHz, ``640 * n_frames`` samples: the track's own span.
        """

    def open_track(self, max_offset: int = 15) -> OpenTrackScorer:
        """Begin a track whose length is not known yet (:class:`OpenTrackScorer`). The reading must
        equal :meth:`start_track`'s with the same crops. This default keeps the crops until
        ``finish``; engines that can work on crops before knowing the track override it."""
        return _BufferedOpenScorer(self, max_offset)
