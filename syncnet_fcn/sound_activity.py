"""What kind of sound each timeline frame holds (talk, sing, music, silence), for the timeline.

The classifier proper is :func:`syncnet_fcn.sound_kinds.classify_sound_kinds` (voice activity, pitch
and audio tagging models). When that module is not installed, :func:`frame_sound_kinds` falls back
to a plain energy split, documented as such: a frame is ``talk`` when its level is within 30 dB of
the window's loud frames and above -50 dBFS, else ``silence``. The fallback cannot tell singing or
music from talk; the timeline's settings record which classifier ran.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import median_filter

from . import TIMELINE_FPS

SAMPLE_RATE = 16000
SAMPLES_PER_FRAME = SAMPLE_RATE // TIMELINE_FPS
KINDS = ("talk", "sing", "music", "silence")
VOICE_KINDS = ("talk", "sing")

_FLOOR_DBFS = -50.0
_BELOW_LOUD_DB = 30.0


def classifier_name() -> str:
    """``"sound_kinds"`` when the classifier is installed, else ``"energy (fallback)"``."""
    return "sound_kinds" if _classifier() is not None else "energy (fallback)"


def _classifier():
    try:
        from .sound_kinds import classify_sound_kinds
    except ImportError:
        return None
    return classify_sound_kinds


def frame_sound_kinds(audio: np.ndarray, n_frames: int) -> np.ndarray:
    """One kind per timeline frame (``n_frames`` of them) for int16 mono 16 kHz ``audio``."""
    classify = _classifier()
    if classify is None:
        return energy_kinds(audio, n_frames)
    kinds = np.full(n_frames, "silence", dtype=object)
    for span in classify(np.asarray(audio), SAMPLE_RATE):
        first = int(round(span.start_s * TIMELINE_FPS))
        stop = int(round(span.end_s * TIMELINE_FPS))
        kinds[max(0, first):min(n_frames, stop)] = span.kind
    return kinds


def energy_kinds(audio: np.ndarray, n_frames: int) -> np.ndarray:
    """The fallback: ``talk`` where the frame is loud enough, else ``silence`` (no music/sing)."""
    samples = np.zeros(n_frames * SAMPLES_PER_FRAME, np.float64)
    given = np.asarray(audio, np.float64)[: len(samples)]
    samples[: len(given)] = given
    rms = np.sqrt(np.mean((samples.reshape(n_frames, SAMPLES_PER_FRAME) / 32768.0) ** 2, axis=1))
    level = 20 * np.log10(np.maximum(rms, 1e-7))
    loud = np.percentile(level, 95) if n_frames else _FLOOR_DBFS
    voiced = level > max(_FLOOR_DBFS, loud - _BELOW_LOUD_DB)
    voiced = median_filter(voiced.astype(np.uint8), size=5, mode="nearest").astype(bool)  # 0.2 s
    return np.where(voiced, "talk", "silence").astype(object)


__all__ = ["KINDS", "VOICE_KINDS", "classifier_name", "frame_sound_kinds", "energy_kinds"]
