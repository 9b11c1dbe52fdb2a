"""MFCC features exactly as the original SyncNet computes them, and their alignment with video frames.

The original feeds ``python_speech_features.mfcc`` with its defaults on 16 kHz int16 samples (not
rescaled to [-1, 1]): 25 ms windows every 10 ms, so 100 MFCC columns per second and exactly 4 columns
per 25 fps video frame. The audio sample of video window *i* (frames i … i+4) is the 20 columns
starting at column 4*i.
"""

from __future__ import annotations

import numpy as np

from . import AUDIO_SAMPLE_RATE

#: MFCC columns per video frame on the 25 fps timeline (10 ms hop, 40 ms frames)
COLUMNS_PER_FRAME = 4
#: MFCC columns in one window of 5 video frames
WINDOW_COLUMNS = 20
N_COEFFICIENTS = 13


def mfcc(audio_int16: np.ndarray, sample_rate: int = AUDIO_SAMPLE_RATE) -> np.ndarray:
    """``(13, n_columns)`` float32 MFCC of mono int16 audio, columns at 100 Hz.

    For ``640 * T`` samples this gives ``4 * T - 1`` columns (the last 25 ms window would run past the
    end), which is why the original's last usable window is ``T - 6``.
    """
    import python_speech_features

    samples = np.asarray(audio_int16)
    if samples.ndim != 1:
        raise ValueError(f"mfcc expects mono audio (1-D), got shape {samples.shape}")
    if len(samples) == 0:
        return np.zeros((N_COEFFICIENTS, 0), dtype=np.float32)
    with np.errstate(divide="ignore"):  # silent frames: the library substitutes eps itself
        features = python_speech_features.mfcc(samples, sample_rate)
    return np.ascontiguousarray(features.T, dtype=np.float32)


def mfcc_windows(mfcc_columns: np.ndarray, n_windows: int) -> np.ndarray:
    """``(n_windows, 1, 13, 20)``: window *i* is columns ``4i … 4i+19`` (a copy, as the original)."""
    needed = COLUMNS_PER_FRAME * (n_windows - 1) + WINDOW_COLUMNS if n_windows > 0 else 0
    if mfcc_columns.shape[1] < needed:
        raise ValueError(f"{n_windows} windows need {needed} MFCC columns, got {mfcc_columns.shape[1]}")
    starts = COLUMNS_PER_FRAME * np.arange(n_windows)
    columns = starts[:, None] + np.arange(WINDOW_COLUMNS)[None, :]
    windows = mfcc_columns[:, columns]  # (13, n, 20)
    return np.ascontiguousarray(windows.transpose(1, 0, 2)[:, None], dtype=np.float32)


def usable_windows(n_frames: int, n_audio_samples: int, samples_per_frame: int = 640) -> int:
    """Number of 5-frame windows the original evaluates: ``min(frames, samples // 640) - 5``, at least 0."""
    return max(0, min(n_frames, n_audio_samples // samples_per_frame) - 5)
