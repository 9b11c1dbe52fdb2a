"""FCN calibration: the fits recover known relations, storage round-trips, the engine picks it up."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from syncnet_fcn.calibrate import (
    FCNCalibration,
    calibration_path,
    fit_affine,
    fit_audio_head,
    fit_calibration,
    load_calibration,
    run_calibration,
    save_calibration,
)
from syncnet_fcn.engines.fcn import FCNEngine
from syncnet_fcn.errors import InvalidArgumentError, WeightsError
from syncnet_fcn.model import SyncNetConfig
from test_model import randomised


def test_fit_affine_recovers_a_known_relation():
    rng = np.random.default_rng(0)
    fcn_dists = rng.uniform(4, 16, size=(300, 31))
    original = 0.93 * fcn_dists + 0.41 + rng.normal(scale=0.01, size=fcn_dists.shape)
    scale, shift = fit_affine(fcn_dists, original)
    assert scale == pytest.approx(0.93, abs=2e-3) and shift == pytest.approx(0.41, abs=2e-2)


def test_fit_audio_head_recovers_a_known_linear_map():
    rng = np.random.default_rng(1)
    features = np.maximum(rng.normal(size=(3000, 24)), 0)  # post-ReLU features
    true_w, true_b = rng.normal(size=(10, 24)), rng.normal(size=10)
    targets = features @ true_w.T + true_b + rng.normal(scale=1e-3, size=(3000, 10))
    prior_w, prior_b = np.zeros((10, 24)), np.zeros(10)
    weight, bias = fit_audio_head(features, targets, prior_w, prior_b, ridge=1e-9)
    np.testing.assert_allclose(weight, true_w, atol=1e-2)
    np.testing.assert_allclose(bias, true_b, atol=1e-2)
    # a strong ridge keeps the original layer
    weight, bias = fit_audio_head(features, targets, true_w * 0 + 1, np.ones(10), ridge=1e6)
    np.testing.assert_allclose(weight, 1.0, atol=1e-3)


def test_calibration_file_round_trip_and_weights_binding(tmp_path):
    model = randomised(SyncNetConfig.light(), seed=1)
    weights_path = tmp_path / "light.pt"
    torch.save({"config": model.config.to_dict(), "state_dict": model.state_dict()}, weights_path)
    assert load_calibration(weights_path, model)[0] is None  # none yet

    from syncnet_fcn.weights import sha256_file

    rng = np.random.default_rng(2)
    calibration = FCNCalibration(
        head_weight=rng.normal(size=(256, 256)).astype(np.float32),
        head_bias=rng.normal(size=256).astype(np.float32),
        distance_scale=1.07,
        distance_shift=-0.2,
        provenance={"weights_sha256": sha256_file(weights_path), "audio_sources": ["a.mp4"]},
    )
    target = save_calibration(calibration, calibration_path(weights_path))
    assert target.name == "light.pt.fcn-calibration.json"
    loaded, note = load_calibration(weights_path, model)
    assert note.startswith("applied")
    np.testing.assert_array_equal(loaded.head_weight, calibration.head_weight)
    np.testing.assert_array_equal(loaded.head_bias, calibration.head_bias)
    assert (loaded.distance_scale, loaded.distance_shift) == (1.07, -0.2)
    assert loaded.provenance["audio_sources"] == ["a.mp4"]

    engine = FCNEngine.from_weights(str(weights_path))
    assert engine.calibration is not None and engine.calibration_note.startswith("applied")
    torch.testing.assert_close(engine.fcn.audio_head[1], torch.from_numpy(calibration.head_bias))

    # fitted for other weights: ignored, and the report says so
    data = json.loads(target.read_text())
    data["provenance"]["weights_sha256"] = "f" * 64
    target.write_text(json.dumps(data))
    loaded, note = load_calibration(weights_path, model)
    assert loaded is None and note.startswith("ignored")
    assert FCNEngine.from_weights(str(weights_path)).calibration is None

    target.write_text("{ not json")
    with pytest.raises(WeightsError, match="fcn-calibration"):
        FCNEngine.from_weights(str(weights_path))


@pytest.fixture(scope="module")
def speech_files():
    from conftest import SHARED

    files = sorted((SHARED / "train" / "grid_s1").glob("*.mp4"))[:20]
    if len(files) < 20:
        pytest.skip("../shared/train/grid_s1 not present")
    return files


@pytest.mark.slow
def test_fit_on_real_speech_reduces_the_held_out_error(speech_files):
    from syncnet_fcn.media import load_audio

    model = randomised(SyncNetConfig.light(), seed=3)
    sources = ((path.name, load_audio(path)) for path in speech_files)
    calibration = fit_calibration(model, sources, holdout_every=5)
    residuals = calibration.provenance["audio_residuals"]
    assert len(calibration.provenance["held_out_sources"]) == 4
    assert residuals["train_windows"] > 1000 and residuals["held_out_windows"] > 200
    assert residuals["held_out_after"]["relative"] < residuals["held_out_before"]["relative"]
    assert calibration.head_weight.shape == (256, 256)
    assert (calibration.distance_scale, calibration.distance_shift) == (1.0, 0.0)  # no faces given


def test_fit_refuses_too_little_speech():
    model = randomised(SyncNetConfig.light())
    rng = np.random.default_rng(0)
    with pytest.raises(InvalidArgumentError, match="more speech"):
        fit_calibration(model, [("noise", (rng.normal(size=16000) * 1000).astype(np.int16))], holdout_every=0)
    with pytest.raises(InvalidArgumentError, match="needs speech"):
        fit_calibration(model, [("empty", np.zeros(100, np.int16))], holdout_every=0)


@pytest.mark.slow
def test_run_calibration_writes_beside_the_weights(tmp_path, speech_files):
    model = randomised(SyncNetConfig.light(), seed=4)
    weights_path = tmp_path / "light.pt"
    torch.save({"config": model.config.to_dict(), "state_dict": model.state_dict()}, weights_path)
    summary = run_calibration(str(weights_path), speech_files[:15], use_faces=False)
    path = calibration_path(weights_path)
    assert summary["path"] == str(path) and path.is_file()
    provenance = json.loads(path.read_text())["provenance"]
    from syncnet_fcn.weights import sha256_file

    assert provenance["weights_sha256"] == sha256_file(weights_path)
    assert len(provenance["audio_sources"]) + len(provenance["held_out_sources"]) == 15
    assert provenance["created"] and provenance["model"]["name"] == "syncnet_light"
    assert FCNEngine.from_weights(str(weights_path)).calibration_note.startswith("applied")
    with pytest.raises(InvalidArgumentError, match="does not exist"):
        run_calibration(str(weights_path), [tmp_path / "missing.mp4"])


@pytest.mark.slow
def test_run_calibration_with_face_tracks_fits_the_distance_map(tmp_path, speech_files):
    from conftest import clip_path

    example = clip_path("syncnet_example.avi")
    model = randomised(SyncNetConfig.light(), seed=5)
    weights_path = tmp_path / "light.pt"
    torch.save({"config": model.config.to_dict(), "state_dict": model.state_dict()}, weights_path)
    summary = run_calibration(str(weights_path), [example, *speech_files[:15]], max_tracks=1)
    distance_map = summary["distance_map"]
    assert isinstance(distance_map, dict), distance_map
    assert distance_map["fitted_on_tracks"] == ["syncnet_example.avi#0"]
    assert summary["distance_scale"] > 0
    (track,) = summary["track_residuals"]
    assert set(track["calibrated"]) == {"offset_equal", "confidence_rel_err", "min_dist_rel_err"}
    # the distance map is fitted on this very track, so its mean distances land on the original's
    # (confidence is not compared: random weights give a confidence near 0, where relative errors mean nothing)
    assert track["calibrated"]["min_dist_rel_err"] < 0.01


def test_thresholds_are_measured_on_wrong_audio_and_applied_by_both_engines(tmp_path):
    """``syncnet-fcn thresholds``: wrong-audio pairs set the bar, readings below it are flagged, and a
    file measured for other weights is ignored."""
    from conftest import clip_path
    from syncnet_fcn.calibrate import load_thresholds, run_thresholds, thresholds_path
    from syncnet_fcn.engines.syncnet import SlidingWindowEngine
    from syncnet_fcn.pipeline import SyncPipeline

    model = randomised(SyncNetConfig.light(), seed=6)
    weights_path = tmp_path / "light.pt"
    torch.save({"config": model.config.to_dict(), "state_dict": model.state_dict()}, weights_path)
    videos = [clip_path("grid_sbwe5n.mpg"), clip_path("lrs2_deepavsr_00001.mp4")]
    summary = run_thresholds(str(weights_path), videos)
    assert summary["path"] == str(thresholds_path(weights_path))
    stored = json.loads(thresholds_path(weights_path).read_text())
    for name in ("syncnet", "fcn"):
        measured = stored["engines"][name]
        assert measured["reliable_confidence"] == pytest.approx(max(measured["wrong_audio"].values()))
        assert len(measured["wrong_audio"]) == 2 and set(measured["true_audio"]) == {v.name for v in videos}
        assert load_thresholds(weights_path, name)["reliable_confidence"] == measured["reliable_confidence"]

    engine = FCNEngine.from_weights(str(weights_path))
    assert engine.speaking_threshold == pytest.approx(stored["engines"]["fcn"]["speaking_threshold"])
    # the bar for the best of several faces on screen: below the lone-face one, applied by the engine
    relative = stored["engines"]["fcn"]["relative_speaking_threshold"]
    assert relative <= stored["engines"]["fcn"]["speaking_threshold"]
    assert engine.relative_speaking_threshold == pytest.approx(relative)
    report = SyncPipeline(engine="fcn", weights=str(weights_path)).run(videos[0])
    bar = stored["engines"]["fcn"]["reliable_confidence"]
    assert report.tracks[0].sync.reliable == (report.tracks[0].sync.confidence >= bar)
    assert report.tracks[0].sync.reliable or "no reliable sync" in report.tracks[0].sync.note
    assert SlidingWindowEngine.from_weights(str(weights_path)).thresholds["reliable_confidence"] == pytest.approx(
        stored["engines"]["syncnet"]["reliable_confidence"])

    # measured for other weights: not applied
    stored["weights_sha256"] = "0" * 64
    thresholds_path(weights_path).write_text(json.dumps(stored))
    assert load_thresholds(weights_path, "fcn") == {}
    assert FCNEngine.from_weights(str(weights_path)).speaking_threshold == 1.5
    assert FCNEngine.from_weights(str(weights_path)).relative_speaking_threshold is None
    thresholds_path(weights_path).write_text("{ not json")
    with pytest.raises(WeightsError, match="thresholds"):
        FCNEngine.from_weights(str(weights_path))
