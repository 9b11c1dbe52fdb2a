"""benchmarks/corpus_lag.py: the model-free own-offset reading a training corpus is aligned by."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from corpus_lag import corpus_reading, lag_curve  # noqa: E402

from syncnet_fcn.media import shift_audio  # noqa: E402


def test_lag_curve_peaks_where_the_sound_follows_the_lips():
    rng = np.random.default_rng(0)
    lips = rng.normal(size=400)
    sound = np.roll(lips, 3)  # the sound comes 3 frames after the lips
    assert int(np.argmax(lag_curve(lips, sound))) - 8 == 3


def test_reading_moves_by_a_sample_level_audio_delay_on_a_real_clip(clip):
    """Delaying a real clip's sound by S frames lowers the reading by S (the SyncNet convention)."""
    from test_landmark import clip_landmarks, track_span

    landmarks, audio, track = clip_landmarks(clip("syncnet_example.avi"))
    span = track_span(audio, track)
    base, used = corpus_reading([{"landmarks": landmarks, "audio": span}])
    assert used == 1
    # the clip's documented own offset is +3; this model-free reading lands near it
    assert abs(base - 3) <= 1.0, base
    for delay in (-4, 2.5, 5):
        moved, _ = corpus_reading([{"landmarks": landmarks, "audio": shift_audio(span, delay)}])
        assert abs((base - moved) - delay) <= 0.6, (delay, base, moved)


def test_own_offsets_contests_a_clip_only_when_the_measures_agree_on_another_offset():
    from own_offsets import is_contested

    assert is_contested([-1.7, -1.95, -2.7])  # three measures, two frames early
    assert not is_contested([-1.7, -1.95, +7.0])  # one measure disagrees: no consensus
    assert not is_contested([+1.2, +1.27, +1.1])  # consensus, but a ±1 reading of 0 still counts
    assert not is_contested([-2.0, float("nan")])  # a missing reading decides nothing
    assert not is_contested([-2.0])  # one measure is not a consensus


def test_own_offsets_rescores_accuracy_without_contested_clips(tmp_path):
    import json

    from own_offsets import accuracy_without

    def row(clip, correct, generated=False, expected=0):
        return {"clip": clip, "generated": generated, "expected": expected, "offset": 0, "correct": correct,
                "context_correct": {"50": 1.0 if correct else 0.5}}

    results = [row("a", True), row("a", True), row("b", False), row("b", False), row("c", True),
               row("g", False, generated=True), row("c", False, expected=None)]
    path = tmp_path / "acc.json"
    path.write_text(json.dumps({"engine": "landmark", "weights": None, "results": results}))
    r = accuracy_without(path, {"b"})
    assert r["all"] == {"n": 5, "accuracy": 0.6, "context": {"50": 0.8}}
    assert r["without_contested"] == {"n": 3, "accuracy": 1.0, "context": {"50": 1.0}}

    # with reliability verdicts: how often readings marked reliable are right, with and without "b"
    for row_, reliable in zip(results, [True, False, True, True, True, True, True]):
        row_["reliable"] = reliable
    path.write_text(json.dumps({"engine": "landmark", "weights": None, "results": results}))
    r = accuracy_without(path, {"b"})
    assert r["all"]["flagged_reliable"] == 0.8 and r["all"]["accuracy_if_reliable"] == 0.5
    assert r["without_contested"]["flagged_reliable"] == pytest.approx(2 / 3)
    assert r["without_contested"]["accuracy_if_reliable"] == 1.0
