"""How far a clip's sound sits from its lips, measured without any trained model.

The inner-lip opening (face mesh, in units of the eye-corner distance) and the speech-band log energy
per 25 fps frame, both standardised, are cross-correlated at lags of ±:data:`MAX_LAG` frames; the
peak is located to a sub-frame with a parabola. Readings are in the SyncNet convention (delaying the
audio by S frames lowers a reading by S) and carry this method's own bias, so they are compared with
each other (a corpus against in-sync clips, a clip against its corpus), not with zero.
"""

from __future__ import annotations

import numpy as np

from . import AUDIO_SAMPLE_RATE, SAMPLES_PER_FRAME

MAX_LAG = 8
# the middle of the inner lips, upper and lower (mediapipe face mesh)
INNER_LIP_MIDDLE = (13, 14)
# a track shorter than this says too little (a 1.2 s word clip has 30 frames)
MIN_LAG_FRAMES = 20


def lip_opening(landmarks: np.ndarray) -> np.ndarray:
    from .landmark.mouth import EYE_OUTER_CORNERS

    gap = np.linalg.norm(landmarks[:, INNER_LIP_MIDDLE[0], :2] - landmarks[:, INNER_LIP_MIDDLE[1], :2], axis=1)
    eyes = np.linalg.norm(landmarks[:, EYE_OUTER_CORNERS[0], :2] - landmarks[:, EYE_OUTER_CORNERS[1], :2], axis=1)
    return gap / eyes


def speech_energy(audio: np.ndarray, n_frames: int) -> np.ndarray:
    """Log energy of the 300–3000 Hz band in each frame's 640 samples (silence past the end)."""
    from .landmark.audio_features import SPEECH_BAND_HZ

    samples = np.zeros(n_frames * SAMPLES_PER_FRAME, dtype=np.float64)
    usable = min(len(audio), len(samples))
    samples[:usable] = audio[:usable]
    frames = samples.reshape(n_frames, SAMPLES_PER_FRAME) * np.hanning(SAMPLES_PER_FRAME)
    spectrum = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    hz = np.fft.rfftfreq(SAMPLES_PER_FRAME, 1 / AUDIO_SAMPLE_RATE)
    band = (hz > SPEECH_BAND_HZ[0]) & (hz < SPEECH_BAND_HZ[1])
    return np.log(spectrum[:, band].sum(axis=1) + 1e-6)


def lag_curve(opening: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """Mean product of the standardised series at lags −MAX_LAG…MAX_LAG (energy frame i + lag ↔ lips i)."""
    o = (opening - opening.mean()) / (opening.std() + 1e-9)
    e = (energy - energy.mean()) / (energy.std() + 1e-9)
    n = len(o)
    out = np.empty(2 * MAX_LAG + 1)
    for k, lag in enumerate(range(-MAX_LAG, MAX_LAG + 1)):
        lips = np.arange(max(0, -lag), min(n, n - lag))
        out[k] = np.mean(o[lips] * e[lips + lag])
    return out


def track_lag_curve(landmarks: np.ndarray, audio: np.ndarray) -> np.ndarray | None:
    """The lag curve of one track, or None when it is too short or the mesh lost the face on a frame
    (a gap would break the series)."""
    if len(landmarks) < MIN_LAG_FRAMES or not np.isfinite(landmarks).all():
        return None
    return lag_curve(lip_opening(landmarks), speech_energy(audio, len(landmarks)))


def curve_reading(curve: np.ndarray) -> float:
    """Sub-frame offset (SyncNet convention) of a lag curve's peak."""
    k = int(np.clip(np.argmax(curve), 1, len(curve) - 2))
    y0, y1, y2 = curve[k - 1 : k + 2]
    denominator = y0 - 2 * y1 + y2
    peak_lag = k - MAX_LAG + (0.5 * (y0 - y2) / denominator if denominator < 0 else 0.0)
    # the sound peaking `lag` frames after the lips reads −lag (SyncNet: delayed audio lowers the reading)
    return float(-peak_lag)


def corpus_reading(tracks: list[dict]) -> tuple[float, int]:
    """``(sub-frame offset in the SyncNet convention, tracks used)`` of the summed lag curves of
    ``[{"landmarks", "audio"}]``."""
    total, used = np.zeros(2 * MAX_LAG + 1), 0
    for track in tracks:
        curve = track_lag_curve(track["landmarks"], track["audio"])
        if curve is not None:
            total += curve
            used += 1
    if not used:
        return float("nan"), 0
    return curve_reading(total), used
