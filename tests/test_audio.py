"""MFCC exactly as the original, and its alignment with the 25 fps timeline."""

from __future__ import annotations

import numpy as np
import pytest
import python_speech_features

from syncnet_fcn.audio import mfcc, mfcc_windows, usable_windows
from syncnet_fcn.media import load_audio, shift_audio


@pytest.fixture(scope="module")
def speech(request) -> np.ndarray:
    from conftest import clip_path

    return load_audio(clip_path("syncnet_example.avi"))


def test_mfcc_is_python_speech_features_transposed():
    rng = np.random.default_rng(0)
    audio = (rng.normal(size=640 * 30) * 3000).astype(np.int16)
    got = mfcc(audio)
    assert got.dtype == np.float32
    assert got.shape == (13, 4 * 30 - 1)  # 4 columns per frame, the last 25 ms window does not fit
    np.testing.assert_allclose(got, python_speech_features.mfcc(audio, 16000).T.astype(np.float32))


@pytest.mark.parametrize("length", [1, 399, 400, 401, 561, 640 * 7 + 3, None])
@pytest.mark.parametrize("block_columns", [1, 7, 1000])
def test_mfcc_in_blocks_is_bit_for_bit_one_call_on_the_whole_signal(speech, length, block_columns):
    """A long stream's MFCC is computed in blocks (memory); every column must equal the library's own,
    pre-emphasis across block edges included, at any length."""
    audio = speech[:length]
    expected = python_speech_features.mfcc(audio, 16000).T.astype(np.float32)
    np.testing.assert_array_equal(mfcc(audio, block_columns=block_columns), expected)


def test_mfcc_rejects_stereo_and_handles_empty():
    with pytest.raises(ValueError):
        mfcc(np.zeros((2, 640), np.int16))
    assert mfcc(np.zeros(0, np.int16)).shape == (13, 0)


def _overlap(shifted: np.ndarray, original: np.ndarray, cols: int, margin: int = 2):
    """Interior columns of ``shifted`` and the ``original`` columns ``cols`` earlier."""
    n = original.shape[1]
    lo, hi = max(0, cols) + margin, n + min(0, cols) - margin
    return shifted[:, lo:hi], original[:, lo - cols : hi - cols]


@pytest.mark.parametrize("shift_frames", [3, -2, 7])
def test_shifting_audio_by_s_frames_shifts_mfcc_by_4s_columns(speech, shift_frames):
    original = mfcc(speech)
    shifted = mfcc(shift_audio(speech, shift_frames))  # sample-level delay (advance when negative)
    lhs, rhs = _overlap(shifted, original, 4 * shift_frames)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-5, atol=1e-4)
    # by no other amount: one column or one frame off does not match
    for wrong in (4 * shift_frames + 1, 4 * shift_frames + 4):
        lhs, rhs = _overlap(shifted, original, wrong, margin=6)
        assert np.abs(lhs - rhs).mean() > 0.5


def test_mfcc_windows_slice_four_columns_per_frame(speech):
    columns = mfcc(speech[: 640 * 40])
    windows = mfcc_windows(columns, 35)
    assert windows.shape == (35, 1, 13, 20)
    for i in (0, 1, 17, 34):
        np.testing.assert_array_equal(windows[i, 0], columns[:, 4 * i : 4 * i + 20])
    with pytest.raises(ValueError):
        mfcc_windows(columns, 36)  # window 35 would need column 159 of 0…158


def test_usable_windows_follow_the_original():
    assert usable_windows(100, 640 * 100) == 95
    assert usable_windows(100, 640 * 80 + 639) == 75  # audio shorter than the video limits it
    assert usable_windows(5, 640 * 5) == 0
    # the last usable window fits the MFCC of the available audio
    audio = np.zeros(640 * 50, np.int16)
    mfcc_windows(mfcc(audio), usable_windows(50, len(audio)))
