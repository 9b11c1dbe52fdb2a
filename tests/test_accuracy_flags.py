"""benchmarks/accuracy.py: the wrong readings flagged reliable, told apart by whether they are steady."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from accuracy import flagged_but_wrong, format_flagged_but_wrong  # noqa: E402

from syncnet_fcn.evaluation import BENCHMARK_SHIFTS, ShiftResult  # noqa: E402


def copies(clip, readings, reliable=True):
    """One clip's copies at the benchmark's shifts, presumed in sync (expected = −shift)."""
    return [ShiftResult(clip=clip, corpus="voxceleb2", generated=False, shift=s, offset=offset, expected=-s,
                        unshifted=readings[BENCHMARK_SHIFTS.index(0)], reliable=reliable)
            for s, offset in zip(BENCHMARK_SHIFTS, readings)]


def test_a_clip_read_two_frames_off_at_every_shift_is_steady_and_a_scattered_miss_is_not():
    steady = copies("steady.mp4", [-s - 2 for s in BENCHMARK_SHIFTS])           # follows every shift, 2 off
    scattered = copies("scattered.mp4", [-s + (5 if s == 4 else 0) for s in BENCHMARK_SHIFTS])  # one miss
    right = copies("right.mp4", [-s for s in BENCHMARK_SHIFTS])
    unflagged = copies("unflagged.mp4", [7] * len(BENCHMARK_SHIFTS), reliable=False)
    out = flagged_but_wrong(steady + scattered + right + unflagged)
    assert out["copies"] == len(BENCHMARK_SHIFTS) + 1
    assert set(out["clips"]) == {"steady.mp4", "scattered.mp4"}
    assert out["clips"]["steady.mp4"]["steady_deviation"] == -2
    assert out["clips"]["scattered.mp4"]["steady_deviation"] is None
    assert out["steady_clips"] == ["steady.mp4"] and out["copies_on_steady_clips"] == len(BENCHMARK_SHIFTS)
    text = format_flagged_but_wrong(out)
    assert "steady -2" in text and "varies" in text


def test_nothing_to_say_when_every_flagged_reading_is_right():
    assert format_flagged_but_wrong(flagged_but_wrong(copies("right.mp4", [-s for s in BENCHMARK_SHIFTS]))) \
        == "no copy flagged reliable was read wrong"
