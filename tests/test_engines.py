"""The `syncnet` and `fcn` engines: loading, streaming, agreement with each other on a real clip."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

from syncnet_fcn.audio import mfcc, mfcc_windows
from syncnet_fcn.calibrate import FCNCalibration
from syncnet_fcn.engines.fcn import FCNEngine
from syncnet_fcn.engines.syncnet import SlidingWindowEngine
from syncnet_fcn.errors import WeightsError
from syncnet_fcn.model import FullyConvSyncNet, SyncNet, SyncNetConfig, prepare_video
from test_model import official_state_dict

N_FRAMES = 80  # 3.2 s of syncnet_example: 75 windows


@pytest.fixture(scope="module")
def example():
    """``(crops, audio)`` of the first N_FRAMES frames of the 224×224 face-crop example clip."""
    from conftest import clip_path
    from syncnet_fcn.media import iter_frames, load_audio

    path = clip_path("syncnet_example.avi")
    crops = np.stack([frame for _, frame in iter_frames(path, end_frame=N_FRAMES)])
    assert crops.shape == (N_FRAMES, 224, 224, 3)
    return crops, load_audio(path, end_frame=N_FRAMES)


def data_normalised(config: SyncNetConfig, crops: np.ndarray, audio: np.ndarray, seed: int = 0) -> SyncNet:
    """Random weights whose BatchNorm statistics come from real input, as in a trained network."""
    torch.manual_seed(seed)
    model = SyncNet(config)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = None  # running stats = the mean over the passes below
    model.train()
    with torch.no_grad():
        clip = prepare_video(crops[:24], config)
        model.forward_video(torch.stack([clip[0, :, i : i + 5] for i in range(0, 20, 2)]))
        model.forward_audio(torch.from_numpy(mfcc_windows(mfcc(audio), 60)))
    return model.eval()


def run(engine, crops, audio, chunk: int):
    scorer = engine.start_track(audio, len(crops), 15)
    largest_buffer = 0
    for first in range(0, len(crops), chunk):
        scorer.push(crops[first : first + chunk])
        if scorer._buffer is not None:
            largest_buffer = max(largest_buffer, scorer._buffer.shape[2])
    return scorer.finish(), largest_buffer


def test_official_layout_file_loads_into_both_engines(tmp_path):
    path = tmp_path / "syncnet_v2.model"
    state = official_state_dict(seed=4)
    torch.save(state, path)
    for cls in (SlidingWindowEngine, FCNEngine):
        engine = cls.from_weights(str(path))
        assert engine.weights == str(path)
        torch.testing.assert_close(engine.model.netfclip[3].weight, state["netfclip.3.weight"])
    assert FCNEngine.from_weights(str(path)).calibration is None
    torch.save({k: v for k, v in list(state.items())[:-5]}, tmp_path / "partial.model")
    for cls in (SlidingWindowEngine, FCNEngine):
        with pytest.raises(WeightsError, match="partial.model"):
            cls.from_weights(str(tmp_path / "partial.model"))


@pytest.fixture(scope="module")
def light_readings(example):
    """Both engines on the real clip with one light random model, pushed in uneven chunks."""
    crops, audio = example
    model = data_normalised(SyncNetConfig.light(), crops, audio)
    readings = {}
    for engine in (SlidingWindowEngine(model, keep_embeddings=True), FCNEngine(model, keep_embeddings=True)):
        readings[engine.name] = {chunk: run(engine, crops, audio, chunk) for chunk in (7, 33, N_FRAMES)}
    return model, readings


def test_streaming_chunks_do_not_change_the_reading(light_readings):
    _, readings = light_readings
    for name, by_chunk in readings.items():
        reference = by_chunk[N_FRAMES][0]
        assert reference.dists.shape == (N_FRAMES - 5, 31)
        assert len(reference.per_frame_confidence) == N_FRAMES
        for chunk, (result, largest_buffer) in by_chunk.items():
            np.testing.assert_allclose(result.dists, reference.dists, rtol=1e-5, atol=1e-5)
            assert result.offset_frames == reference.offset_frames
            # frames are consumed as windows complete: never the whole track in memory
            if chunk < N_FRAMES:
                assert largest_buffer < N_FRAMES - 5, name


def test_fcn_video_embeddings_equal_the_windowed_ones_on_real_crops(light_readings):
    _, readings = light_readings
    windowed = readings["syncnet"][7][0].extra["video_embeddings"]
    fcn = readings["fcn"][7][0].extra["video_embeddings"]
    np.testing.assert_allclose(fcn, windowed, rtol=0, atol=1e-4)


def test_fcn_audio_differs_only_through_window_edges(example):
    """The audio stream's first layers agree exactly except at the columns next to a window's edges."""
    _, audio = example
    model = data_normalised(SyncNetConfig.official(), *example)
    columns = torch.from_numpy(mfcc(audio))[None, None]
    early = model.netcnnaud[:7]  # conv1, conv2 (3×3, padding 1) with BN and ReLU: a 2-column halo
    with torch.inference_mode():
        whole = early(columns)[0]
        for i in (0, 10, 40):
            window = early(columns[..., 4 * i : 4 * i + 20])[0]
            same = whole[..., 4 * i : 4 * i + 20]
            difference = (window - same).abs().amax(dim=(0, 1))  # per column
            assert torch.all(difference[2:18] < 1e-4), i  # interior: identical
            if i > 0:
                assert difference[0] > 1e-3  # the zero padding replaced real audio here


def test_fcn_audio_embeddings_stay_close_to_their_own_window(light_readings, example):
    """Measured bound: an FCN audio embedding is nearer its own window's windowed embedding than others.

    With random (data-normalised) light weights on this clip the mean error is about 0.6 of the mean
    distance between windows; the calibration exists to shrink it for real weights.
    """
    model, readings = light_readings
    _, audio = example
    windowed = readings["syncnet"][N_FRAMES][0].extra["audio_embeddings"]
    fcn = readings["fcn"][N_FRAMES][0].extra["audio_embeddings"]
    error = np.linalg.norm(fcn - windowed, axis=1)
    spread = np.linalg.norm(windowed[:, None] - windowed[None], axis=2)
    nearest = np.argmin(np.linalg.norm(fcn[:, None] - windowed[None], axis=2), axis=1)
    assert np.mean(nearest == np.arange(len(fcn))) >= 0.8
    assert error.mean() < 0.8 * spread[np.triu_indices(len(fcn), 1)].mean()


def test_calibration_distance_map_is_applied(example, light_readings):
    model, readings = light_readings
    crops, audio = example
    raw = readings["fcn"][N_FRAMES][0]
    calibrated = FCNEngine(model, calibration=FCNCalibration(distance_scale=2.0, distance_shift=0.5))
    result, _ = run(calibrated, crops, audio, 40)
    np.testing.assert_allclose(result.dists, 2.0 * raw.dists + 0.5, rtol=1e-6)
    assert result.offset_frames == raw.offset_frames
    assert result.confidence == pytest.approx(2.0 * raw.confidence, rel=1e-6)
    assert result.min_dist == pytest.approx(2.0 * raw.min_dist + 0.5, rel=1e-6)


def test_audio_head_override_changes_only_the_audio_embeddings(example, light_readings):
    model, _ = light_readings
    last = model.netfcaud[3]
    head = (last.weight.detach().clone(), last.bias.detach() + 1.0)
    fcn = FullyConvSyncNet(model, audio_head=head)
    columns = torch.from_numpy(mfcc(example[1]))[None, None]
    with torch.inference_mode():
        shifted = fcn.audio_embeddings(columns) - FullyConvSyncNet(model).audio_embeddings(columns)
    torch.testing.assert_close(shifted, torch.ones_like(shifted), rtol=0, atol=1e-5)


def test_short_tracks_and_short_audio(example, light_readings):
    model, _ = light_readings
    crops, audio = example
    for engine in (SlidingWindowEngine(model), FCNEngine(model)):
        too_short, _ = run(engine, crops[:5], audio[: 640 * 5], 5)
        assert not too_short.reliable and too_short.min_dist is None and "too short" in too_short.note
        assert len(too_short.per_frame_confidence) == 5
        # audio ending early limits the windows to what it covers
        clipped, _ = run(engine, crops[:40], audio[: 640 * 30 + 100], 16)
        assert clipped.dists.shape[0] == 25 and len(clipped.per_frame_confidence) == 40


@pytest.mark.parametrize("chunk", [7, 32, 64])
def test_open_track_reads_as_a_known_track(example, chunk):
    """A track opened before its length and audio are known (the one pass hands crops over while the
    face is followed) reads the same bit for bit, whatever the chunks; the default open scorer of an
    engine without a streaming path too."""
    from syncnet_fcn.engines.base import _BufferedOpenScorer

    crops, audio = example
    audio = audio[: 640 * len(crops)]
    model = data_normalised(SyncNetConfig.light(), crops, audio)
    for engine in (SlidingWindowEngine(model, keep_embeddings=True), FCNEngine(model, keep_embeddings=True)):
        known, _ = run(engine, crops, audio, chunk)
        for opened in (engine.open_track(15), _BufferedOpenScorer(engine, 15)):
            for first in range(0, len(crops), chunk):
                opened.push(crops[first : first + chunk])
            got = opened.finish(audio, len(crops))
            assert got.offset_frames == known.offset_frames and got.confidence == known.confidence
            np.testing.assert_array_equal(got.dists, known.dists)
            np.testing.assert_array_equal(got.extra["video_embeddings"], known.extra["video_embeddings"])
