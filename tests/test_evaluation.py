"""The accuracy protocol's scoring on planted results (no engine, no clips needed)."""

from __future__ import annotations

import numpy as np
import pytest

from syncnet_fcn.engines.base import TrackSync
from syncnet_fcn.evaluation import (
    ShiftResult,
    benchmark_summary,
    context_accuracy,
    corpus_of,
    format_summary,
    is_correct,
    leave_one_corpus_out,
    main_track_index,
    own_offset,
    robust_bias,
    start_multi_audio,
    subframe_minimum,
    summarize_results,
    track_audio,
)

MAX_OFFSET = 15


def planted_dists(n_windows: int, offset: int, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """Distances whose minimum sits at ``offset`` in every window (column k ↔ offset 15 − k)."""
    offsets = MAX_OFFSET - np.arange(2 * MAX_OFFSET + 1)
    rng = np.random.default_rng(seed)
    base = np.abs(offsets - offset).astype(float)[None, :].repeat(n_windows, 0)
    return base + noise * rng.standard_normal(base.shape)


def result(clip, shift, offset, expected, unshifted, corpus="grid", generated=False, contexts=None, reliable=None):
    return ShiftResult(clip, corpus, generated, shift, offset, expected, unshifted, reliable=reliable,
                       context_correct=contexts or {})


def test_corpus_and_own_offsets_follow_the_clip_names():
    assert corpus_of("grid_bbaf2n.mpg") == "grid"
    assert corpus_of("lrs2_deepavsr_00001.mp4") == corpus_of("deeplipreading_demo.mp4") == "lrs2"
    assert corpus_of("pcavs_00015.mp4") == "voxceleb2"
    assert corpus_of("gen_sadtalker_still1.mp4") == "generated"
    assert corpus_of("visualvoice_interview.mp4") == "other"
    # documented offsets of the syncnet example family (REFERENCE §1, §7), 0 for in-sync corpora
    assert own_offset("syncnet_example.avi") == 3
    assert own_offset("syncnetfcn_test_offset5.avi") == -2
    assert own_offset("syncnetfcn_test_offset12.avi") == -9
    assert own_offset("/any/dir/grid_sbwe5n.mpg") == 0
    assert own_offset("gen_sadtalker_still1.mp4") == 0  # presumed: generators mean to be in sync
    assert own_offset("visualvoice_interview.mp4") is None


def test_correct_means_within_one_frame():
    assert is_correct(4, 3) and is_correct(2, 3) and is_correct(3, 3)
    assert not is_correct(5, 3) and not is_correct(1, 3)


def test_shift_result_scores_against_truth_and_against_the_unshifted_reading():
    # a clip whose own offset is 3, delayed by 4: expected 3 - 4 = -1
    r = result("syncnet_example.avi", 4, -2, -1, 3)
    assert r.correct and r.relative_correct
    wrong = result("syncnet_example.avi", 4, 1, -1, 3)
    assert wrong.correct is False and wrong.relative_correct is False
    # unknown own offset: no absolute verdict, relative still judged
    unknown = result("interview.mp4", -7, 9, None, 2, corpus="other")
    assert unknown.correct is None and unknown.relative_correct is True
    # the unshifted copy is no evidence for relative accuracy; a missing reading is wrong
    assert result("a", 0, 0, 0, 0).relative_correct is None
    assert result("a", 4, None, -4, 0).correct is False


def test_context_accuracy_counts_runs_of_windows():
    dists = planted_dists(40, offset=5)
    assert context_accuracy(dists, expected=5, context=5) == 1.0
    assert context_accuracy(dists, expected=6, context=5) == 1.0  # within ±1
    assert context_accuracy(dists, expected=8, context=5) == 0.0
    # the first half points at 5, the second at -5: 5-window runs follow their majority
    mixed = np.vstack([planted_dists(20, 5), planted_dists(20, -5)])
    assert context_accuracy(mixed, expected=5, context=5) == pytest.approx(18 / 36)
    assert context_accuracy(mixed, expected=-5, context=5) == pytest.approx(18 / 36)
    # a context longer than the track judges the whole track once
    assert context_accuracy(planted_dists(10, -3), expected=-3, context=50) == 1.0


def test_summary_on_planted_results():
    results = [
        # grid clip A: right everywhere
        result("A", 0, 0, 0, 0, contexts={5: 1.0, 15: 1.0, 50: 1.0}),
        result("A", 4, -4, -4, 0, contexts={5: 0.5, 15: 1.0, 50: 1.0}),
        # grid clip B: reads its own copy at 3 (wrong) and keeps the shift relation (relatively right)
        result("B", 0, 3, 0, 3, contexts={5: 0.0, 15: 0.0, 50: 0.0}),
        result("B", 4, -1, -4, 3, contexts={5: 0.0, 15: 0.0, 50: 0.0}),
        # a clip of unknown own offset: relatively wrong
        result("C", 0, 1, None, 1, corpus="other"),
        result("C", -7, 1, None, 1, corpus="other"),
        # a generated clip: reported apart
        result("gen_D", 0, 0, 0, 0, corpus="generated", generated=True),
    ]
    real = summarize_results([r for r in results if not r.generated])
    assert real["clips"] == 3 and real["copies"] == 6
    assert real["clip_level"] == {"n": 4, "accuracy": 0.5}
    assert real["relative"] == {"n": 3, "accuracy": pytest.approx(2 / 3)}
    assert real["context_5"]["accuracy"] == pytest.approx(1.5 / 4)
    assert real["in_sync_zero"] == {"n": 2, "accuracy": 0.5}

    summary = benchmark_summary(results)
    assert summary["generated"]["overall"]["clips"] == 1
    assert set(summary["real"]["by_corpus"]) == {"grid", "other"}
    assert summary["real"]["by_corpus"]["other"]["clip_level"]["accuracy"] is None
    table = format_summary(summary)
    assert "real (all)" in table and "generated (all)" in table and "  grid" in table


def test_summary_reports_how_often_readings_marked_reliable_are_right():
    results = [
        result("A", 0, 0, 0, 0, reliable=True),  # right, reliable
        result("A", 4, -4, -4, 0, reliable=True),  # right, reliable
        result("B", 0, 3, 0, 3, reliable=True),  # wrong but called reliable
        result("B", 4, 9, -4, 3, reliable=False),  # wrong, flagged: a user would not act on it
        result("C", -7, 1, None, 1, corpus="other", reliable=True),  # unknown truth: not counted
    ]
    real = summarize_results(results)
    assert real["flagged_reliable"] == {"n": 4, "accuracy": 0.75}
    assert real["clip_level_if_reliable"] == {"n": 3, "accuracy": pytest.approx(2 / 3)}
    assert real["clip_level"] == {"n": 4, "accuracy": 0.5}
    # copies without a reliability verdict (older result files) count in neither figure
    assert summarize_results([result("A", 0, 0, 0, 0)])["flagged_reliable"] == {"n": 0, "accuracy": None}
    table = format_summary(benchmark_summary(results))
    assert " 75.0%" in table and " 66.7%" in table


def test_subframe_minimum_and_robust_bias():
    offsets = np.arange(-15, 16)
    curve = (offsets - 1.3) ** 2
    assert subframe_minimum(curve, offsets) == pytest.approx(1.3)
    assert subframe_minimum(np.abs(offsets + 15.0), offsets) == -15.0  # at the edge: no refinement
    # gross misses do not drag the bias
    assert robust_bias([0.8, 1.1, 0.9, 1.0, -14.0, 12.0]) == pytest.approx(0.95)


def test_leave_one_corpus_out_flags_a_corpus_that_disagrees():
    errors = {f"grid_{i}.mpg": 1.0 + 0.1 * (i % 3) for i in range(6)}
    errors |= {f"lrs2_{i}.mp4": 0.9 + 0.1 * (i % 2) for i in range(6)}
    errors |= {f"pcavs_{i}.mp4": 4.0 for i in range(3)}  # a corpus 3 frames off the others
    report = leave_one_corpus_out(errors)
    grid = report["corpora"]["grid"]
    assert grid["bias_without_it"] == pytest.approx(report["corpora"]["lrs2"]["bias_without_it"], abs=0.2)
    assert grid["correct_with_held_out_bias"] == 1.0
    vox = report["corpora"]["voxceleb2"]
    assert vox["bias_of_it"] == 4.0
    assert vox["correct_with_held_out_bias"] == 0.0  # a bias fitted elsewhere does not fit it


def test_track_audio_is_the_tracks_span_zero_padded():
    audio = np.arange(640 * 10, dtype=np.int16)
    span = track_audio(audio, start_frame=8, n_frames=4)
    assert len(span) == 640 * 4
    assert np.array_equal(span[: 640 * 2], audio[640 * 8 :])
    assert not span[640 * 2 :].any()


def test_main_track_prefers_reliable_then_confident():
    def sync(conf, reliable):
        return TrackSync(0, conf, 1.0, np.zeros(3), np.arange(-1, 2), np.zeros(3), reliable=reliable)

    assert main_track_index([sync(9.0, False), sync(1.0, True), sync(2.0, True)]) == 2
    assert main_track_index([sync(float("nan"), False), sync(0.1, False)]) == 1


def test_multi_audio_fans_out_to_engines_without_a_shared_path():
    pushed = []

    class Scorer:
        def __init__(self, audio):
            self.audio = audio

        def push(self, crops):
            pushed.append((int(self.audio[0]), len(crops)))

        def finish(self):
            return int(self.audio[0])

    class Engine:
        def start_track(self, audio, n_frames, max_offset=15):
            return Scorer(audio)

    multi = start_multi_audio(Engine(), [np.full(4, 1), np.full(4, 2)], n_frames=3)
    multi.push(np.zeros((3, 224, 224, 3), np.uint8))
    assert multi.finish() == [1, 2]
    assert pushed == [(1, 3), (2, 3)]


def test_judging_a_clip_without_a_face_track_misses_every_shift():
    from syncnet_fcn.evaluation import judge_readings

    results = judge_readings("grid_sbwe5n.mpg", {}, (0, -12, 4), max_offset=MAX_OFFSET)
    assert [r.shift for r in results] == [0, -12, 4]
    assert [r.correct for r in results] == [False, False, False]


def test_judged_readings_follow_the_shift_and_carry_the_track_length():
    from syncnet_fcn.evaluation import judge_readings
    from syncnet_fcn.scoring import summarize

    readings = {s: [summarize(planted_dists(40, -s), MAX_OFFSET, n_frames=44)] for s in (0, 4, -7)}
    readings[4] = [summarize(planted_dists(40, 0), MAX_OFFSET, n_frames=44)]  # a miss: should read -4
    results = {r.shift: r for r in judge_readings("lrs2_x.mp4", readings, (0, 4, -7), max_offset=MAX_OFFSET)}
    assert results[0].correct and results[-7].correct and not results[4].correct
    assert {r.frames for r in results.values()} == {44}
    assert results[-7].context_correct[15] == 1.0


def test_accuracy_by_track_length_and_without_the_contested_clips():
    from syncnet_fcn.evaluation import CONTESTED_CLIPS, length_bucket

    assert [length_bucket(n) for n in (25, 26, 50, 51, 125, 126, None)] == [
        "<= 1 s", "1-2 s", "1-2 s", "2-5 s", "2-5 s", "> 5 s", None]
    short = [result("lrw_a.mp4", s, s + 2, -s, 2, corpus="lrw") for s in (0, 4)]  # always wrong
    long = [result("grid_b.mpg", s, -s, -s, 0) for s in (0, 4)]
    contested = [result(CONTESTED_CLIPS[0], s, -s - 2, -s, -2, corpus="voxceleb2") for s in (0, 4)]
    for r in short:
        r.frames = 24
    for r in long + contested:
        r.frames = 300
    summary = benchmark_summary(short + long + contested)["real"]
    assert summary["by_length"]["<= 1 s"]["clip_level"] == {"n": 2, "accuracy": 0.0}
    assert summary["by_length"]["> 5 s"]["clip_level"] == {"n": 4, "accuracy": 0.5}
    assert summary["overall"]["clip_level"]["accuracy"] == pytest.approx(2 / 6)
    assert summary["without_contested"]["clip_level"]["accuracy"] == pytest.approx(2 / 4)
    assert "length <= 1 s" in format_summary(benchmark_summary(short + long))
