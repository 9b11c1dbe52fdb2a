"""One track's model inputs: standardised audio and visual features side by side.

:class:`TrackFeatures` holds a track's audio features (padded by the offsets searched) and its visual
features; :func:`visual_features` chooses what a member sees of the face (:data:`VISUAL_LIPS`: the lip
contour, :data:`VISUAL_LIPS_APPEARANCE`: that plus the mouth image's low spatial frequencies).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InvalidArgumentError
from .audio_features import audio_frame_features, heard_frames
from .mouth import mouth_appearance, mouth_features

def stack_context(features: np.ndarray, context: int) -> np.ndarray:
    """Row i → rows ``i-context … i+context`` side by side (edges repeated)."""
    if context == 0:
        return features
    n = len(features)
    padded = np.pad(features, ((context, context), (0, 0)), mode="edge")
    return np.concatenate([padded[j : j + n] for j in range(2 * context + 1)], axis=1)


def _standardize(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance per column, statistics from ``rows`` only."""
    ref = x[rows]
    return ((x - ref.mean(axis=0)) / (ref.std(axis=0) + 1e-6)).astype(np.float32)


@dataclass
class TrackFeatures:
    """One track's standardised model inputs. Standardising per track removes the speaker (lip size,
    voice loudness) and keeps the movement."""

    audio: np.ndarray  # (n + 2*pad, 60); row r ↔ frame r - pad
    mouth: np.ndarray  # (n, d); zero rows where the mesh failed
    valid: np.ndarray  # (n,) mesh found
    pad: int
    heard: np.ndarray  # (n + 2*pad,) audio row has sound: False in the padding and on digital silence

    @classmethod
    def build(cls, mouth: np.ndarray, valid: np.ndarray, audio: np.ndarray, pad: int) -> TrackFeatures:
        n = len(mouth)
        audio_feats = audio_frame_features(audio, n, pad)
        real = np.zeros(len(audio_feats), dtype=bool)
        real[pad : pad + n] = True
        heard = np.zeros(len(audio_feats), dtype=bool)
        heard[pad : pad + n] = heard_frames(audio, n)
        return cls(_standardize(audio_feats, real), np.zeros(0, np.float32), valid, pad, heard).with_mouth(mouth, valid)

    def with_mouth(self, mouth: np.ndarray, valid: np.ndarray) -> TrackFeatures:
        """The same audio side with other visual features of the same frames (another kind of member)."""
        mouth_z = np.zeros(mouth.shape, dtype=np.float32)
        if valid.any():
            mouth_z[valid] = _standardize(mouth[valid].astype(np.float64), np.ones(int(valid.sum()), bool))
        return TrackFeatures(self.audio, mouth_z, valid, self.pad, self.heard)




# What the models see of the face: the lip contour from the mesh, or that plus the mouth image's
# low spatial frequencies (:func:`syncnet_fcn.landmark.mouth.mouth_appearance`).
VISUAL_LIPS = "lips"
VISUAL_LIPS_APPEARANCE = "lips+appearance"


def visual_features(landmarks: np.ndarray, mouth_images: np.ndarray | None, kind: str,
                    appearance: np.ndarray | None = None,
                    lips: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(features (n, d), mesh found (n,))`` of one track for models trained on ``kind``.

    Models that use the mouth image take its features from ``appearance`` when given (computed as the
    frames arrived, :func:`~syncnet_fcn.landmark.mouth.mouth_appearance`), else from ``mouth_images``.
    ``lips``: :func:`~syncnet_fcn.landmark.mouth.mouth_features` of ``landmarks`` computed already
    (every kind of member starts from them; the pose alignment is the costly part).
    """
    lips, valid = lips if lips is not None else mouth_features(landmarks)
    if kind == VISUAL_LIPS:
        return lips, valid
    if appearance is None:
        if mouth_images is None or len(mouth_images) != len(landmarks):
            raise InvalidArgumentError("these landmark models need the mouth image of every frame (FaceMeshTracker.process_with_mouth)")
        appearance = mouth_appearance(mouth_images, valid)
    return np.concatenate([lips, appearance], axis=1), valid

