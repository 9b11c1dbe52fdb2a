"""What every engine returns for one face track: :class:`TrackSync`, a plain record.

It sits below the engines and :mod:`syncnet_fcn.scoring` (which fills it from a distance matrix), so
that scoring, reports and front ends read it without importing any engine.
"""

from __future__ import annotations

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
