"""Face tracks: real clips with mediapipe, and the tracker's rules with a scripted detector."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import write_test_video
from detectors import Detection, FaceDetector, available_detectors, create_detector
from syncnet_fcn.errors import InvalidArgumentError
from syncnet_fcn.media import probe
from syncnet_fcn.tracking import FaceTrack, TrackingOptions, find_face_tracks


def write_video(path, images):
    """A 25 fps H.264 clip of the given BGR frames."""
    return write_test_video(path, images)


def write_numbered_video(path, n_frames=80, size=(160, 120)):
    """Flat grey frames, frame k at level ``10 + 3k``, losslessly coded: a frame says its own index."""
    width, height = size
    frames = [np.full((height, width, 3), 10 + 3 * k, np.uint8) for k in range(n_frames)]
    return write_test_video(path, frames, lossless=True)


class ScriptedDetector:
    """Returns ``script(k)`` boxes for frame k of a numbered video, whatever order frames come in."""

    name = "scripted"
    levels = None  # mean level of every decoded frame of the numbered video

    def __init__(self, script):
        self.script = script
        self.seen: list[int] = []

    @property
    def calls(self) -> int:
        return len(self.seen)

    def detect(self, frame_bgr):
        # Colour conversion moves the levels a little: the frame is the one whose level is nearest.
        k = int(np.argmin(np.abs(self.levels - float(frame_bgr.mean()))))
        self.seen.append(k)
        return [Detection(box=b, score=0.9) for b in self.script(k)]


class CallCounter:
    """Returns ``script(call_index)``: for clips whose frames do not carry their index."""

    name = "counter"

    def __init__(self, script):
        self.script, self.calls = script, 0

    def detect(self, frame_bgr):
        self.calls += 1
        return [Detection(box=b, score=0.9) for b in self.script(self.calls - 1)]


@pytest.fixture(scope="module")
def flat_video(tmp_path_factory):
    """80 numbered frames of 160x120: no scene cut (levels change by 3 per frame)."""
    from syncnet_fcn.media import iter_frames

    path = write_numbered_video(tmp_path_factory.mktemp("tracks") / "numbered.mp4")
    levels = np.array([frame.mean() for _, frame in iter_frames(path)])
    assert len(levels) == 80 and np.all(np.diff(levels) > 1)
    ScriptedDetector.levels = levels
    return path


LEFT = [10, 20, 50, 60]
RIGHT = [100, 20, 140, 60]
DENSE = TrackingOptions(detect_every=1)


# ----------------------------------------------------------------------------------------------------
# real clips


@pytest.mark.slow
def test_interview_has_two_long_tracks(clip):
    path = clip("visualvoice_interview.mp4")
    n_frames = probe(path).n_frames
    tracks = find_face_tracks(path)
    long_tracks = [t for t in tracks if t.n_frames >= 0.8 * n_frames]
    assert len(long_tracks) == 2
    left, right = sorted(long_tracks, key=lambda t: t.bbox_summary()["x"])
    # Two different people, side by side: their boxes never overlap.
    assert left.bbox_summary()["x"] + left.bbox_summary()["w"] < right.bbox_summary()["x"]
    for track in long_tracks:
        assert track.boxes.shape == (track.n_frames, 4)
        assert np.all(np.diff(track.frames) == 1)
        assert np.isfinite(track.boxes).all()


@pytest.mark.slow
def test_face_crop_clip_is_one_track_over_the_whole_clip(clip):
    path = clip("syncnet_example.avi")
    n_frames = probe(path).n_frames
    seen = []
    tracks = find_face_tracks(path, progress=lambda done, total: seen.append((done, total)))
    assert len(tracks) == 1
    track = tracks[0]
    assert (track.track_id, track.start_frame, track.end_frame) == (0, 0, n_frames - 1)
    assert seen[-1] == (n_frames, n_frames)
    # The face fills this 224x224 crop: its box is most of the frame, centred horizontally.
    summary = track.bbox_summary()
    assert 0.5 * 224 < summary["size"] < 224
    assert abs(summary["x"] + summary["w"] / 2 - 112) < 20


def test_mediapipe_detector_is_available_and_finds_a_face(clip):
    from syncnet_fcn.media import iter_frames

    assert "mediapipe" in available_detectors()
    detector = create_detector("mediapipe", min_confidence=0.5)
    assert isinstance(detector, FaceDetector)
    _, frame = next(iter_frames(clip("syncnet_example.avi")))
    found = detector.detect(frame)
    assert len(found) == 1
    box = found[0].box
    assert box.dtype == np.float32 and box[0] < 112 < box[2] and box[1] < 112 < box[3]
    assert not detector.detect(np.full((240, 320, 3), 128, np.uint8))  # no face in a flat frame


def test_unknown_detector_is_a_user_error():
    with pytest.raises(InvalidArgumentError):
        create_detector("nonexistent")


# ----------------------------------------------------------------------------------------------------
# tracker rules with a scripted detector


def test_missed_detections_are_interpolated(flat_video):
    def script(k):
        if 30 <= k < 40:
            return []  # ten missed frames
        shift = k * 0.5  # the face drifts right
        return [np.array(LEFT) + [shift, 0, shift, 0]]

    options = TrackingOptions(smooth_width=1, detect_every=1)
    (track,) = find_face_tracks(flat_video, detector=ScriptedDetector(script), options=options)
    assert (track.start_frame, track.end_frame) == (0, 79)
    assert np.isnan(track.scores[30:40]).all() and not np.isnan(track.scores[:30]).any()
    # Linear interpolation across the gap follows the drift.
    np.testing.assert_allclose(track.boxes[35, 0], LEFT[0] + 35 * 0.5, atol=1e-3)


def test_long_gap_splits_tracks_and_short_tracks_are_dropped(flat_video):
    def script(k):
        return [] if 20 <= k < 50 else [LEFT]  # 30 missed frames > max_missed 25

    tracks = find_face_tracks(flat_video, detector=ScriptedDetector(script), options=TrackingOptions(min_track_frames=5))
    assert [(t.track_id, t.start_frame, t.end_frame) for t in tracks] == [(0, 0, 19), (1, 50, 79)]
    # With the default one-second (25-frame) minimum the 20-frame piece goes and the 30-frame one stays.
    tracks = find_face_tracks(flat_video, detector=ScriptedDetector(script))
    assert [(t.start_frame, t.end_frame) for t in tracks] == [(50, 79)]
    tracks = find_face_tracks(flat_video, detector=ScriptedDetector(script), options=TrackingOptions(min_track_frames=100))
    assert tracks == []


def test_two_faces_make_two_tracks_ordered_by_start(flat_video):
    def script(k):
        return [RIGHT] + ([LEFT] if k >= 10 else [])

    tracks = find_face_tracks(flat_video, detector=ScriptedDetector(script))
    assert [(t.track_id, t.start_frame) for t in tracks] == [(0, 0), (1, 10)]
    np.testing.assert_allclose(tracks[0].boxes.mean(0), RIGHT, atol=1e-3)
    np.testing.assert_allclose(tracks[1].boxes.mean(0), LEFT, atol=1e-3)


def test_min_face_size_drops_small_faces(flat_video):
    def script(k):
        return [LEFT, [100, 20, 150, 70]]  # 40 px and 50 px

    sizes = [t.bbox_summary()["size"] for t in find_face_tracks(
        flat_video, detector=ScriptedDetector(script), options=TrackingOptions(min_face_size=45))]
    assert sizes == [50.0]


def test_median_smoothing_removes_a_jump(flat_video):
    def script(k):
        return [np.array(LEFT) + (4 if k == 40 else 0)]  # one jittery detection

    (track,) = find_face_tracks(flat_video, detector=ScriptedDetector(script))
    np.testing.assert_allclose(track.boxes, np.tile(LEFT, (80, 1)), atol=1e-3)
    (raw,) = find_face_tracks(flat_video, detector=ScriptedDetector(script),
                              options=TrackingOptions(smooth_width=1, detect_every=1))
    assert raw.boxes[40, 0] == pytest.approx(LEFT[0] + 4)


# ----------------------------------------------------------------------------------------------------
# the detection schedule


def test_steady_faces_are_detected_every_kth_frame_and_on_the_last(flat_video):
    detector = ScriptedDetector(lambda k: [LEFT])
    (track,) = find_face_tracks(flat_video, detector=detector, options=TrackingOptions(detect_every=4))
    assert sorted(detector.seen) == [*range(0, 80, 4), 79]
    assert (track.start_frame, track.end_frame) == (0, 79)
    assert np.isfinite(track.scores).sum() == 21
    np.testing.assert_allclose(track.boxes, np.tile(LEFT, (80, 1)), atol=1e-3)


def jumpy_script(k):
    """A face that jumps at frames 23 and 61, a second face from frame 33 to 52, none on 70-71."""
    if k in (70, 71):
        return []
    first = np.array(LEFT) + (30 if 23 <= k < 61 else 0)
    return [first] + ([RIGHT] if 33 <= k <= 52 else [])


def test_frames_between_disagreeing_detections_are_all_detected(flat_video):
    options = dict(smooth_width=1, min_track_frames=5, max_missed=1)
    dense_detector, sparse_detector = ScriptedDetector(jumpy_script), ScriptedDetector(jumpy_script)
    dense = find_face_tracks(flat_video, detector=dense_detector, options=TrackingOptions(detect_every=1, **options))
    sparse = find_face_tracks(flat_video, detector=sparse_detector, options=TrackingOptions(detect_every=5, **options))
    # Where the boxes stay put, every 5th frame is enough; each change is bisected down to the frame
    # it happens on, so the tracks are those of detecting every frame: same spans, same boxes.
    assert sparse_detector.calls < 0.5 * dense_detector.calls
    assert [(t.start_frame, t.end_frame) for t in sparse] == [(t.start_frame, t.end_frame) for t in dense]
    for a, b in zip(sparse, dense):
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)
    assert {22, 23, 33, 52, 53, 60, 61, 69, 70, 71, 72} <= set(sparse_detector.seen)


def test_a_small_motion_is_interpolated_and_a_large_one_detected(flat_video):
    def drifting(k):  # half a pixel per frame to the right, then a 12 px jump at frame 47
        shift = k / 2 + (12 if k >= 47 else 0)
        return [np.array(LEFT) + [shift, 0, shift, 0]]

    detector = ScriptedDetector(drifting)
    (track,) = find_face_tracks(flat_video, detector=detector, options=TrackingOptions(smooth_width=1))
    # 2.5 px on a 40 px box between detections keeps the IoU at 0.88: interpolated, and exactly so;
    # the jump (IoU 0.54) is bisected down to the two frames either side of it.
    assert {46, 47} <= set(detector.seen) and not {1, 2, 3, 4, 48, 49} & set(detector.seen)
    assert detector.calls == 19  # 0, 5, ..., 75, 79 and 47, 46
    expected = np.array([drifting(k)[0] for k in range(80)], np.float32)
    np.testing.assert_allclose(track.boxes, expected, atol=1e-3)


def test_disagreement_threshold_is_an_option(flat_video):
    def drifting(k):  # 3 px per frame: 15 px between detections 5 frames apart, IoU about 0.45
        return [np.array(LEFT) + [3 * k, 0, 3 * k, 0]]

    loose = ScriptedDetector(drifting)
    find_face_tracks(flat_video, detector=loose, options=TrackingOptions(steady_iou=0.3))
    strict = ScriptedDetector(drifting)
    find_face_tracks(flat_video, detector=strict, options=TrackingOptions(steady_iou=0.8))
    assert loose.calls == 17 and strict.calls == 80


@pytest.mark.slow
def test_sparse_detection_keeps_the_crops_of_dense_detection(clip):
    from syncnet_fcn.crops import crop_window
    from syncnet_fcn.tracking import _iou

    path = clip("syncnet_example.avi")
    counted = []

    def run(options):
        detector = create_detector("mediapipe", min_confidence=0.5, max_side=None)
        calls = []
        original = detector.detect
        detector.detect = lambda frame: calls.append(1) or original(frame)
        tracks = find_face_tracks(path, detector=detector, options=options)
        counted.append(len(calls))
        return tracks

    (dense,), (sparse,) = run(TrackingOptions(detect_every=1)), run(TrackingOptions())
    assert (sparse.start_frame, sparse.end_frame) == (dense.start_frame, dense.end_frame)
    windows = [np.array([crop_window(b) for b in t.boxes], np.float32)[:, [2, 0, 3, 1]] for t in (dense, sparse)]
    overlap = np.array([_iou(a[None], b[None])[0, 0] for a, b in zip(*windows)])
    assert overlap.mean() > 0.95 and overlap.min() > 0.8
    assert counted[1] < 0.5 * counted[0]


def test_scene_cut_ends_tracks(tmp_path):
    rng = np.random.default_rng(3)
    first, second = (rng.integers(0, 256, (120, 160, 3), dtype=np.uint8) for _ in range(2))
    path = write_video(tmp_path / "cut.mp4", [first] * 40 + [second] * 40)
    detector = CallCounter(lambda k: [LEFT])
    tracks = find_face_tracks(path, detector=detector)
    # Both sides of the cut are detected, so each track reaches it although 39 is not a 5th frame.
    assert [(t.start_frame, t.end_frame) for t in tracks] == [(0, 39), (40, 79)]
    assert detector.calls < 30


def test_face_track_summary():
    boxes = np.array([[10, 20, 50, 70], [12, 20, 52, 70], [14, 20, 54, 70]], np.float32)
    track = FaceTrack(track_id=3, frames=np.arange(5, 8), boxes=boxes, scores=np.array([0.9, np.nan, 0.8]))
    assert (track.start_frame, track.end_frame, track.n_frames) == (5, 7, 3)
    assert track.bbox_summary() == {"x": 12.0, "y": 20.0, "w": 40.0, "h": 50.0, "size": 50.0}


def test_a_clip_shorter_than_the_minimum_track_is_still_read_whole(tmp_path):
    """A 0.9 s clip (one word) has no 25-frame track; a face covering most of it is kept."""
    path = write_numbered_video(tmp_path / "word.mp4", n_frames=22)
    from syncnet_fcn.media import iter_frames

    levels = np.array([frame.mean() for _, frame in iter_frames(path)])
    detector = ScriptedDetector(lambda k: [LEFT])
    detector.levels = levels
    (track,) = find_face_tracks(path, detector=detector, options=TrackingOptions(smooth_width=1, detect_every=1))
    assert (track.start_frame, track.end_frame) == (0, 21)
    # a face on only half of the clip is not a track of it
    detector = ScriptedDetector(lambda k: [LEFT] if k < 11 else [])
    detector.levels = levels
    assert find_face_tracks(path, detector=detector, options=TrackingOptions(smooth_width=1, detect_every=1)) == []
