"""The interface every sync engine implements, and the per-track result it returns.

The pipeline decodes a video once and pushes each face track's crops, chunk by chunk, to one
:class:`TrackScorer` per engine; nothing holds a whole track's frames. An engine turns crops and the
track's audio into a distance matrix ``dists[window, shift]`` (lower = better match) and
:mod:`syncnet_fcn.scoring` turns that into the original SyncNet numbers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass
class TrackSync:
    """One engine's reading of one face track.

    ``offset_curve[k]`` is the mean distance at offset ``offsets[k]``; offsets run from ``-max_offset``
    to ``+max_offset``. ``per_frame_confidence`` has one value per track frame (window-centred, edges
    repeated). ``dists`` is the raw ``(n_windows, 2*max_offset+1)`` matrix, columns in the original's
    order (column k ↔ offset ``max_offset - k``), kept for context-averaged evaluation.
    """

    offset_frames: int
    confidence: float
    min_dist: float | None
    per_frame_confidence: np.ndarray
    offsets: np.ndarray
    offset_curve: np.ndarray
    reliable: bool = True
    note: str | None = None
    dists: np.ndarray | None = field(default=None, repr=False)
    extra: dict = field(default_factory=dict)


class TrackScorer(ABC):
    """Receives one track's crops in order; :meth:`finish` returns the reading."""

    @abstractmethod
    def push(self, crops: np.ndarray) -> None:
        """Next consecutive crops of the track, ``(n, 224, 224, 3)`` uint8 BGR."""

    @abstractmethod
    def finish(self) -> TrackSync:
        """All crops pushed: compute and return the reading."""


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


class _FanOutScorer:
    """One scorer per audio, all fed the same crops (engines without a shared-video path)."""

    def __init__(self, scorers):
        self.scorers = scorers

    def push(self, crops):
        for s in self.scorers:
            s.push(crops)

    def finish(self):
        return [s.finish() for s in self.scorers]


def start_multi_audio(engine, audios: Sequence[np.ndarray], n_frames: int, max_offset: int = 15):
    """A scorer that reads one track against several audios: ``push(crops)``; ``finish() -> [TrackSync]``.

    Engines that can share the video side (``start_tracks_multi_audio``) do the visual work once.
    """
    shared = getattr(engine, "start_tracks_multi_audio", None)
    if shared is not None:
        return shared(audios, n_frames, max_offset)
    return _FanOutScorer([engine.start_track(a, n_frames, max_offset) for a in audios])
