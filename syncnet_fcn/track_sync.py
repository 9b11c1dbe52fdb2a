"""What every engine returns for one face track: :class:`TrackSync`, a plain record.

It sits below the engines and :mod:`syncnet_fcn.scoring` (which fills it from a distance matrix), so
that scoring, reports and front ends read it without importing any engine.
"""

from __future__ import annotations

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


# Reading one track against several audios (shifted copies, a wrong pair) lives here, below the
# engines, because the evaluation tools and the fused engine both need it.


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
