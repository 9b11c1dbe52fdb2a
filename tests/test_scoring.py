"""Offset search and the original's formulas: the vectorised code against a plain loop reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.signal import medfilt

from syncnet_fcn.scoring import context_offsets, pairwise_distance_matrix, summarize


def loop_reference(video: np.ndarray, audio: np.ndarray, vshift: int) -> np.ndarray:
    """The original's distance loop: audio zero-padded by vshift, one window at a time."""
    video_t = torch.from_numpy(video).double()
    audio_t = torch.from_numpy(audio).double()
    padded = F.pad(audio_t, (0, 0, vshift, vshift))
    rows = []
    for i in range(len(video_t)):
        rows.append(F.pairwise_distance(video_t[[i], :].repeat(2 * vshift + 1, 1), padded[i : i + 2 * vshift + 1, :]))
    return torch.stack(rows).numpy()


def planted(n: int, dim: int, offset: int, noise: float, seed: int, max_offset: int = 15):
    """Video window i matches audio window i - offset (audio leads by ``offset`` frames when > 0)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n + 2 * max_offset, dim))
    video = base[max_offset : max_offset + n]
    audio = base[max_offset + offset : max_offset + offset + n] + noise * rng.normal(size=(n, dim))
    return video, audio


@pytest.mark.parametrize("max_offset", [15, 4])
def test_vectorised_distances_equal_loop_reference(max_offset):
    rng = np.random.default_rng(1)
    video = rng.normal(size=(57, 32))
    audio = rng.normal(size=(57, 32))
    expected = loop_reference(video, audio, max_offset)
    got = pairwise_distance_matrix(video, audio, max_offset)
    assert got.shape == (57, 2 * max_offset + 1)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-10)


def test_vectorised_distances_small_blocks_and_short_tracks():
    rng = np.random.default_rng(2)
    video, audio = rng.normal(size=(9, 16)), rng.normal(size=(9, 16))
    # fewer windows than shifts, and blocks of a single window
    np.testing.assert_allclose(
        pairwise_distance_matrix(video, audio, 15, block_bytes=1), loop_reference(video, audio, 15), atol=1e-10
    )


@pytest.mark.parametrize("offset", [-12, -3, 0, 2, 9, 15])
def test_planted_shift_is_recovered_with_the_sign_convention(offset):
    video, audio = planted(120, 64, offset, noise=0.3, seed=offset + 20)
    dists = pairwise_distance_matrix(video, audio)
    np.testing.assert_allclose(dists, loop_reference(video, audio, 15), atol=1e-10)
    result = summarize(dists, 15, n_frames=125)
    assert result.offset_frames == offset
    assert result.confidence > 1.0
    # the curve is indexed by ascending offsets and has its minimum at the planted one
    assert result.offsets[np.argmin(result.offset_curve)] == offset


def test_summarize_follows_the_original_formulas():
    rng = np.random.default_rng(3)
    dists = rng.uniform(5, 15, size=(40, 31))
    result = summarize(dists, 15)
    mdist = dists.mean(0)
    minidx = int(np.argmin(mdist))
    assert result.offset_frames == 15 - minidx
    assert result.min_dist == pytest.approx(mdist[minidx])
    assert result.confidence == pytest.approx(np.median(mdist) - mdist[minidx])
    np.testing.assert_allclose(result.per_frame_confidence, medfilt(np.median(mdist) - dists[:, minidx], 9), rtol=1e-6)
    np.testing.assert_allclose(result.offset_curve, mdist[::-1])
    np.testing.assert_array_equal(result.offsets, np.arange(-15, 16))


def test_per_frame_confidence_is_centred_and_edge_repeated():
    rng = np.random.default_rng(4)
    dists = rng.uniform(5, 15, size=(20, 31))
    windows = summarize(dists, 15).per_frame_confidence
    frames = summarize(dists, 15, n_frames=25).per_frame_confidence
    assert len(frames) == 25
    np.testing.assert_array_equal(frames[2:22], windows)  # window i centred on frame i + 2
    assert frames[0] == frames[1] == windows[0]
    assert np.all(frames[22:] == windows[-1])


def test_summarize_rejects_wrong_shapes():
    with pytest.raises(ValueError):
        summarize(np.zeros((5, 30)), 15)
    with pytest.raises(ValueError):
        summarize(np.zeros((0, 31)), 15)


def test_context_offsets_average_neighbouring_windows():
    video, audio = planted(80, 48, 5, noise=1.2, seed=7)
    dists = pairwise_distance_matrix(video, audio)
    single = context_offsets(dists, 1)
    np.testing.assert_array_equal(single, 15 - np.argmin(dists, axis=1))
    five = context_offsets(dists, 5)
    naive = [15 - np.argmin(dists[p : p + 5].mean(0)) for p in range(len(dists) - 4)]
    np.testing.assert_array_equal(five, naive)
    whole = context_offsets(dists, 1000)
    assert whole.tolist() == [summarize(dists).offset_frames] == [5]
    # more context, more windows right (the noise is heavy enough that single windows miss)
    assert np.mean(five == 5) >= np.mean(single == 5)
    with pytest.raises(ValueError):
        context_offsets(dists, 0)
