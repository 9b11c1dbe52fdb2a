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


# python_speech_features frames the whole signal at once: about 8 kB of temporaries per column, 50 MB
# per minute of audio, 15 GB for a 5-hour stream. Columns are computed in blocks of this many instead.
MFCC_BLOCK_COLUMNS = 6000
PRE_EMPHASIS = 0.97  # python_speech_features' default
WINDOW_SAMPLES, HOP_SAMPLES = 400, 160  # its 25 ms / 10 ms at 16 kHz


def mfcc(audio_int16: np.ndarray, sample_rate: int = AUDIO_SAMPLE_RATE,
         block_columns: int = MFCC_BLOCK_COLUMNS) -> np.ndarray:
    """``(13, n_columns)`` float32 MFCC of mono int16 audio, columns at 100 Hz.

    For ``640 * T`` samples this gives ``4 * T - 1`` columns (the last 25 ms window would run past the
    end), which is why the original's last usable window is ``T - 6``. Computed ``block_columns`` at a
    time with the same numbers as one call of ``python_speech_features.mfcc`` on the whole signal: its
    pre-emphasis is applied per block from the sample before it, and every column depends only on its
    own 25 ms window.
    """
    import python_speech_features

    samples = np.asarray(audio_int16)
    if samples.ndim != 1:
        raise ValueError(f"mfcc expects mono audio (1-D), got shape {samples.shape}")
    if len(samples) == 0:
        return np.zeros((N_COEFFICIENTS, 0), dtype=np.float32)
    if sample_rate != AUDIO_SAMPLE_RATE:  # the blocks below assume 16 kHz windows: other rates in one call
        with np.errstate(divide="ignore"):
            return np.ascontiguousarray(python_speech_features.mfcc(samples, sample_rate).T, dtype=np.float32)
    # the library's column count: 1 + ceil((samples - window) / hop), the last window zero-padded
    total = 1 if len(samples) <= WINDOW_SAMPLES else 1 + -(-(len(samples) - WINDOW_SAMPLES) // HOP_SAMPLES)
    out = np.empty((N_COEFFICIENTS, total), dtype=np.float32)
    for first in range(0, total, block_columns):
        stop = min(total, first + block_columns)
        begin = first * HOP_SAMPLES
        end = len(samples) if stop == total else (stop - 1) * HOP_SAMPLES + WINDOW_SAMPLES
        block = samples[begin:end].astype(np.float64)
        previous = float(samples[begin - 1]) if begin > 0 else None
        emphasised = np.empty_like(block)
        emphasised[0] = block[0] if previous is None else block[0] - PRE_EMPHASIS * previous
        emphasised[1:] = block[1:] - PRE_EMPHASIS * block[:-1]
        with np.errstate(divide="ignore"):  # silent frames: the library substitutes eps itself
            features = python_speech_features.mfcc(emphasised, sample_rate, preemph=0)
        out[:, first:stop] = features.T
    return out


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
