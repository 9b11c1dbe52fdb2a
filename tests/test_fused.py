"""The fused engine: combination of planted member curves, auto's choice, and a real shifted clip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from syncnet_fcn.engines import fused as fused_module
from syncnet_fcn.engines.fused import fuse_readings, standardized_dists
from syncnet_fcn.scoring import summarize

MAX_OFFSET = 15


def planted(offset: int, depth: float, n_frames: int = 60, noise: float = 1.0, scale: float = 1.0, seed: int = 0):
    """A member reading whose windows dip by ``depth`` (in noise units) at ``offset``."""
    rng = np.random.default_rng(seed)
    dists = rng.normal(0.0, noise, (n_frames - 4, 2 * MAX_OFFSET + 1)) + 10.0
    dists[:, MAX_OFFSET - offset] -= depth
    return summarize(dists * scale, MAX_OFFSET, n_frames=n_frames)


def no_reading(n_frames: int = 60):
    sync = planted(0, 0.0, n_frames)
    sync.min_dist, sync.reliable = None, False
    return sync


def test_the_weights_decide_between_disagreeing_members():
    readings = {"landmark": planted(+3, 1.0, seed=1), "fcn": planted(-6, 1.0, seed=2)}
    lean_landmark = fuse_readings(readings, {"landmark": 0.8, "fcn": 0.2}, MAX_OFFSET, 60)
    lean_fcn = fuse_readings(readings, {"landmark": 0.2, "fcn": 0.8}, MAX_OFFSET, 60)
    assert lean_landmark.offset_frames == 3
    assert lean_fcn.offset_frames == -6
    assert lean_landmark.extra["member_offsets"] == {"landmark": 3, "fcn": -6}


def test_members_agreeing_weakly_add_up():
    # each member alone too noisy to find +4 over 20 frames; together they do (independent noise)
    hits_alone = hits_fused = 0
    for seed in range(20):
        a, b = planted(4, 0.35, n_frames=20, seed=seed), planted(4, 0.35, n_frames=20, seed=100 + seed)
        hits_alone += (a.offset_frames == 4) + (b.offset_frames == 4)
        hits_fused += fuse_readings({"landmark": a, "fcn": b}, {"landmark": 0.5, "fcn": 0.5}, MAX_OFFSET, 20).offset_frames == 4
    assert hits_fused / 20 > hits_alone / 40 + 0.1


def test_member_scale_does_not_matter():
    a, b = planted(+2, 0.6, seed=3), planted(-1, 0.5, seed=4)
    big = summarize(b.dists * 1000.0, MAX_OFFSET, n_frames=60)
    w = {"landmark": 0.5, "fcn": 0.5}
    one = fuse_readings({"landmark": a, "fcn": b}, w, MAX_OFFSET, 60)
    other = fuse_readings({"landmark": a, "fcn": big}, w, MAX_OFFSET, 60)
    assert one.offset_frames == other.offset_frames
    np.testing.assert_allclose(one.offset_curve, other.offset_curve, atol=1e-9)


def test_standardised_windows_have_zero_mean_unit_spread_and_stay_linear():
    sync = planted(5, 2.0, scale=7.0)
    z = standardized_dists(sync)
    assert np.abs(z.mean(axis=1)).max() < 1e-9 and abs(z.std() - 1.0) < 1e-9
    curve = z.mean(axis=0)
    assert int(np.argmin(curve)) == MAX_OFFSET - 5
    # the mean of the fused windows is the weighted standardised curves: contexts average linearly
    other = planted(-2, 1.0, seed=9)
    fused = fuse_readings({"landmark": sync, "fcn": other}, {"landmark": 0.3, "fcn": 0.7}, MAX_OFFSET, 60)
    expected = 0.3 * curve + 0.7 * standardized_dists(other).mean(axis=0)
    np.testing.assert_allclose(fused.dists.mean(axis=0), expected, atol=1e-9)


def test_a_member_without_a_reading_drops_out():
    alone = planted(-4, 1.0, seed=5)
    fused = fuse_readings({"landmark": no_reading(), "fcn": alone}, {"landmark": 0.7, "fcn": 0.3}, MAX_OFFSET, 60)
    assert fused.offset_frames == -4 and fused.extra["members_used"] == ["fcn"]
    nothing = fuse_readings({"landmark": no_reading(), "fcn": no_reading()}, {"landmark": 0.5, "fcn": 0.5},
                            MAX_OFFSET, 60)
    assert not nothing.reliable and nothing.min_dist is None and "no member engine" in nothing.note


def test_confidence_grows_with_evidence_and_short_tracks_are_flagged():
    w = {"landmark": 0.5, "fcn": 0.5}
    bars = {"reliable_confidence": 0.0, "shortest_reliable_frames": 30}
    short = fuse_readings({"landmark": planted(2, 1.0, 20, seed=6), "fcn": planted(2, 1.0, 20, seed=7)}, w,
                          MAX_OFFSET, 20, bars)
    long = fuse_readings({"landmark": planted(2, 1.0, 200, seed=6), "fcn": planted(2, 1.0, 200, seed=7)}, w,
                         MAX_OFFSET, 200, bars)
    assert long.confidence > 2 * short.confidence
    assert long.reliable and long.note is None
    assert not short.reliable and "too short to decide: 20 frames (0.80 s)" in short.note
    # unrelated sound stays low whatever the length: under the bar, and said so
    bar = {"reliable_confidence": long.confidence / 2}
    unrelated = fuse_readings({"landmark": planted(0, 0.0, 200, seed=8), "fcn": planted(0, 0.0, 200, seed=9)}, w,
                              MAX_OFFSET, 200, bar)
    assert not unrelated.reliable and "agree too little" in unrelated.note
    # a right but short reading under the bar is called too short, naming its length
    weak = fuse_readings({"landmark": planted(2, 0.5, 30, seed=6), "fcn": planted(2, 0.5, 30, seed=7)}, w,
                         MAX_OFFSET, 30, {**bar, "decisive_frames": 50})
    assert not weak.reliable and "too short to decide: 30 frames (1.20 s) give too little evidence" in weak.note


# -- auto ---------------------------------------------------------------------------------------------


@pytest.fixture
def no_official(monkeypatch, tmp_path):
    monkeypatch.setenv("SYNCNET_FCN_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("SYNCNET_FCN_WEIGHTS", raising=False)
    monkeypatch.delenv("SYNCNET_FCN_NO_PROJECT_WEIGHTS", raising=False)


def stored_fusion(monkeypatch, tmp_path, auto: bool):
    fusion = json.loads(fused_module.FUSION_PATH.read_text())
    fusion["auto"] = auto
    path = tmp_path / "fused.json"
    path.write_text(json.dumps(fusion))
    monkeypatch.setattr(fused_module, "FUSION_PATH", path)


def test_auto_picks_fused_when_its_fit_says_it_wins(no_official, monkeypatch, tmp_path):
    from syncnet_fcn.engines import _pick_auto

    stored_fusion(monkeypatch, tmp_path, auto=True)
    assert _pick_auto(None) == ("fused", None)
    stored_fusion(monkeypatch, tmp_path, auto=False)
    assert _pick_auto(None) == ("landmark", None)


def test_auto_falls_back_to_landmark_without_the_light_checkpoint(no_official, monkeypatch, tmp_path):
    from syncnet_fcn import weights
    from syncnet_fcn.engines import _pick_auto, available_engines

    stored_fusion(monkeypatch, tmp_path, auto=True)
    entry = dict(weights.registry()["syncnet_light"], path=str(tmp_path / "missing.pt"))
    monkeypatch.setitem(weights.REGISTRY, "syncnet_light", entry)
    assert _pick_auto(None) == ("landmark", None)
    status = available_engines()["fused"]
    assert not status["available"] and "light checkpoint" in status["reason"]


def test_fused_refuses_a_checkpoint_it_was_not_fitted_with(tmp_path, monkeypatch):
    from syncnet_fcn.engines import create_engine
    from syncnet_fcn.errors import EngineUnavailableError

    fusion = json.loads(fused_module.FUSION_PATH.read_text())
    fusion["fcn_weights_sha256"] = "0" * 64
    path = tmp_path / "fused.json"
    path.write_text(json.dumps(fusion))
    monkeypatch.setattr(fused_module, "FUSION_PATH", path)
    with pytest.raises(EngineUnavailableError, match="fitted with the fcn checkpoint"):
        create_engine("fused")


# -- a real clip ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_fused_reads_a_real_shifted_clip_from_one_decode(clip):
    """Both members read the same crops of one decode; the fused reading follows the shift."""
    from syncnet_fcn.evaluation import read_shifted_copies
    from syncnet_fcn.media import load_audio
    from syncnet_fcn.pipeline import SyncPipeline

    video = clip("grid_swiz3n.mpg")
    pipe = SyncPipeline(engine="fused")
    engine = pipe.engines["fused"]
    tracks = pipe.find_tracks(video)
    readings = read_shifted_copies(engine, video, tracks, load_audio(video), shifts=(0, 6))
    for shift, syncs in readings.items():
        sync = max(syncs, key=lambda s: len(s.per_frame_confidence))
        assert abs(sync.offset_frames + shift) <= 1
        members = sync.extra["members"]
        assert set(members) == {"landmark", "fcn"}
        assert len(members["landmark"].per_frame_confidence) == len(members["fcn"].per_frame_confidence)
