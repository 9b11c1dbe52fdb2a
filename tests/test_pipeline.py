"""SyncPipeline: engines sharing one decode, track reuse with shifted audio, and the error paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import write_test_video
from syncnet_fcn.errors import EngineUnavailableError, NoAudioError, NoFaceError, WeightsError
from syncnet_fcn.media import load_audio, shift_audio
from syncnet_fcn.pipeline import SyncPipeline


@pytest.fixture
def no_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNCNET_FCN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SYNCNET_FCN_WEIGHTS", raising=False)
    monkeypatch.setenv("SYNCNET_FCN_NO_PROJECT_WEIGHTS", "1")


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory):
    from syncnet_fcn.model import SyncNet, SyncNetConfig

    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("w") / "random_official_layout.model"
    torch.save(SyncNet(SyncNetConfig.official()).state_dict(), path)
    return path


def tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * 16000)) / 16000
    return (np.sin(2 * np.pi * 220 * t) * 4000).astype(np.int16)


def test_video_without_faces_is_no_face_error(tmp_path, no_weights):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 40, (144, 176, 3), dtype=np.uint8) for _ in range(75)]
    video = write_test_video(tmp_path / "noface.mp4", frames, tone(3))
    with pytest.raises(NoFaceError):
        SyncPipeline(engine="landmark").run(video)


def test_video_without_audio_is_no_audio_error(tmp_path, no_weights):
    frames = [np.full((96, 96, 3), 128, np.uint8) for _ in range(30)]
    video = write_test_video(tmp_path / "silent.mp4", frames, audio=None)
    with pytest.raises(NoAudioError):
        SyncPipeline(engine="landmark").run(video)


def test_single_engine_without_weights_raises(no_weights):
    with pytest.raises(WeightsError):
        SyncPipeline(engine="fcn")


def test_engine_list_keeps_reasons_for_engines_that_cannot_run(no_weights):
    pipe = SyncPipeline(engines=["syncnet", "fcn", "landmark"])
    assert list(pipe.engines) == ["landmark"]
    assert "syncnet_v2.model" in pipe.engine_errors["syncnet"]
    with pytest.raises(EngineUnavailableError):
        SyncPipeline(engines=["syncnet", "fcn"])


@pytest.mark.slow
def test_engines_share_tracks_and_shifted_audio_moves_the_reading(clip, random_weights, no_weights):
    video = clip("syncnet_example.avi")
    pipe = SyncPipeline(engines=["syncnet", "fcn", "landmark"], weights=str(random_weights))
    assert set(pipe.engines) == {"syncnet", "fcn", "landmark"}
    tracks = pipe.find_tracks(video)
    assert len(tracks) == 1
    reports = pipe.analyze(video, tracks=tracks)
    spans = {(t.track.start_frame, t.track.end_frame) for r in reports.values() for t in r.tracks}
    assert len(spans) == 1, "every engine must see the same track"
    base = reports["landmark"].offset_frames

    # Delay the audio by 5 frames at sample level: the reading moves from B to B - 5 (REFERENCE §1).
    audio = shift_audio(load_audio(video), 5)
    shifted = pipe.analyze(video, tracks=tracks, audio=audio)
    assert abs(shifted["landmark"].offset_frames - (base - 5)) <= 1
    # The windowed and fully convolutional engines see identical crops and audio.
    assert shifted["syncnet"].tracks[0].sync.dists.shape == shifted["fcn"].tracks[0].sync.dists.shape


@pytest.mark.slow
def test_interview_reports_two_speakers(clip, no_weights):
    video = clip("visualvoice_interview.mp4")
    report = SyncPipeline(engine="landmark").run(video)
    assert len(report.tracks) >= 2
    doc = report.to_dict()
    long_tracks = [t for t in doc["tracks"] if t["n_frames"] > 200]
    assert len(long_tracks) >= 2
    for t in doc["tracks"]:
        for seg in t["speaking_segments"]:
            assert t["start_frame"] <= seg["start_frame"] <= seg["end_frame"] <= t["end_frame"]


def test_prefetched_keeps_order_raises_producer_errors_and_stops_with_the_consumer():
    import threading

    from syncnet_fcn.media import prefetched

    assert list(prefetched(iter(range(50)), depth=3)) == list(range(50))

    def failing():
        yield 1
        raise ValueError("damaged packet")

    got = []
    with pytest.raises(ValueError, match="damaged packet"):
        for item in prefetched(failing()):
            got.append(item)
    assert got == [1]

    produced = []

    def endless():
        k = 0
        while True:
            produced.append(k)
            yield k
            k += 1

    stream = prefetched(endless(), depth=2)
    assert [next(stream) for _ in range(5)] == [0, 1, 2, 3, 4]
    stream.close()  # the consumer stops early (an engine raised, a client went away)
    assert not any(t.name == "prefetch" and t.is_alive() for t in threading.enumerate())
    count = len(produced)
    assert count <= 5 + 2 + 2  # consumed + queued + one in hand
