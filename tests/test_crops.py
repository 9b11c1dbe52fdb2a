"""Crop geometry (REFERENCE §4) and streamed per-track crop chunks."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import write_test_video
from syncnet_fcn.crops import CROP_SCALE, PAD_VALUE, crop_face, crop_window, iter_track_crops
from syncnet_fcn.media import iter_frames
from syncnet_fcn.tracking import FaceTrack


def original_crop(frame, box, size=224, cs=CROP_SCALE):
    """The original pipeline's steps, literally: pad the whole frame, slice, resize."""
    x = (box[0] + box[2]) / 2
    y = (box[1] + box[3]) / 2
    bs = max(box[2] - box[0], box[3] - box[1]) / 2
    bsi = int(bs * (1 + 2 * cs))
    padded = np.pad(frame, ((bsi, bsi), (bsi, bsi), (0, 0)), "constant", constant_values=(110, 110))
    my, mx = y + bsi, x + bsi
    face = padded[int(my - bs):int(my + bs * (1 + 2 * cs)), int(mx - bs * (1 + cs)):int(mx + bs * (1 + cs))]
    return cv2.resize(face, (size, size))


def coordinate_frame(height=256, width=256):
    """Blue = column, green = row: every pixel says where it is."""
    rows, cols = np.mgrid[0:height, 0:width]
    frame = np.zeros((height, width, 3), np.uint8)
    frame[..., 0], frame[..., 1], frame[..., 2] = cols, rows, 200
    return frame


def test_crop_is_a_square_of_1_4_boxes_centred_below_the_box():
    box = [90, 80, 150, 140]  # 60 px face centred at (120, 110): bs = 30
    top, bottom, left, right = crop_window(box)
    side = 2 * (1 + CROP_SCALE) * 30  # 84 px
    assert bottom - top == pytest.approx(side, abs=1) and right - left == pytest.approx(side, abs=1)
    assert (left + right) / 2 == pytest.approx(120, abs=1)
    assert (top + bottom) / 2 == pytest.approx(110 + CROP_SCALE * 30, abs=1)  # shifted down by cs*bs

    # Unscaled (size = crop side) the crop is exactly that window of the frame.
    frame = coordinate_frame()
    crop = crop_face(frame, box, size=right - left)
    assert crop.shape == (right - left, right - left, 3)
    assert (crop[0, 0, 0], crop[0, 0, 1]) == (left, top)
    assert (crop[-1, -1, 0], crop[-1, -1, 1]) == (right - 1, top + (right - left) - 1)


def test_longer_side_sets_the_scale():
    wide, tall = crop_window([100, 100, 160, 120]), crop_window([100, 100, 120, 160])
    assert wide[1] - wide[0] == tall[1] - tall[0] == pytest.approx(2 * 1.4 * 30, abs=1)


def test_face_at_the_frame_edge_is_padded_with_110():
    frame = np.full((200, 300, 3), 30, np.uint8)
    box = [-10, -20, 50, 40]  # top-left corner, partly outside
    top, bottom, left, right = crop_window(box)
    assert top < 0 and left < 0
    crop = crop_face(frame, box, size=right - left)
    inside_rows, inside_cols = -top, -left
    assert np.all(crop[:inside_rows] == PAD_VALUE) and np.all(crop[:, :inside_cols] == PAD_VALUE)
    assert np.all(crop[inside_rows + 1:, inside_cols + 1:] == 30)


@pytest.mark.parametrize("seed", range(6))
def test_crop_face_equals_the_original_procedure(seed):
    rng = np.random.default_rng(seed)
    frame = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    size = rng.uniform(30, 150)
    cx, cy = rng.uniform(0, 320), rng.uniform(0, 240)  # anywhere, including at the edges
    aspect = rng.uniform(0.8, 1.25)
    box = np.array([cx - size / 2, cy - size * aspect / 2, cx + size / 2, cy + size * aspect / 2], np.float32)
    np.testing.assert_array_equal(crop_face(frame, box), original_crop(frame, box.astype(np.float64)))


# ----------------------------------------------------------------------------------------------------
# streamed chunks


@pytest.fixture(scope="module")
def numbered_video(tmp_path_factory):
    """120 flat grey frames, each a different level: crops tell which frame they came from."""
    path = tmp_path_factory.mktemp("crops") / "numbered.mp4"
    frames = [np.full((80, 96, 3), 10 + 2 * k, np.uint8) for k in range(120)]
    write_test_video(path, frames, lossless=True)
    return path


def make_track(track_id, start, stop, box=(30, 20, 66, 56)):
    frames = np.arange(start, stop + 1)
    return FaceTrack(track_id=track_id, frames=frames, boxes=np.tile(np.float32(box), (len(frames), 1)),
                     scores=np.full(len(frames), 0.9, np.float32))


def test_chunks_are_gap_free_for_overlapping_and_distant_tracks(numbered_video):
    tracks = [make_track(0, 5, 60), make_track(1, 20, 47, box=(10, 10, 40, 40)), make_track(2, 110, 119)]
    chunks = {t.track_id: [] for t in tracks}
    frame_levels = np.array([frame.mean() for _, frame in iter_frames(numbered_video)])
    assert len(np.unique(frame_levels.round())) == 120
    progress = []
    for track_id, first, crops in iter_track_crops(numbered_video, tracks, size=32, chunk=16,
                                                   progress=lambda d, t: progress.append((d, t))):
        assert crops.dtype == np.uint8 and crops.shape[1:] == (32, 32, 3) and 1 <= len(crops) <= 16
        chunks[track_id].append((first, crops))
    for track in tracks:
        firsts = [first for first, _ in chunks[track.track_id]]
        lengths = [len(c) for _, c in chunks[track.track_id]]
        assert firsts[0] == track.start_frame
        assert all(a + n == b for a, n, b in zip(firsts, lengths, firsts[1:]))  # consecutive, no gap
        assert sum(lengths) == track.n_frames
        assert all(n == 16 for n in lengths[:-1])
        # Each crop comes from its own frame (flat frames, distinct levels; the box is inside).
        for first, crops in chunks[track.track_id]:
            levels = crops.reshape(len(crops), -1).mean(1)
            np.testing.assert_allclose(levels, frame_levels[first:first + len(crops)], atol=0.5)
    assert progress[-1][0] == progress[-1][1]


def test_no_tracks_no_chunks(numbered_video):
    assert list(iter_track_crops(numbered_video, [])) == []


@pytest.mark.parametrize("name", ["latentsync_demo1.mp4", "mead_M030_sad_3_001.mp4"])
def test_streamed_crops_equal_crops_of_the_whole_frame(clip, name):
    # The pass converts only the pixels under each window; windows inside the frame, across its
    # edges and corners, and a moving one must come out as crop_face on the fully converted frame.
    path = clip(name)
    frames = dict(iter_frames(path, end_frame=30))
    height, width = frames[0].shape[:2]
    rng = np.random.default_rng(5)
    tracks = []
    for track_id, (cx, cy, side) in enumerate([(0.5, 0.4, 0.2), (0.02, 0.03, 0.3), (0.97, 0.9, 0.15), (0.5, 0.5, 1.2)]):
        n = 30 - 3 * track_id
        drift = rng.normal(0, 3, (n, 2)).cumsum(0)
        centre = np.array([cx * width, cy * height]) + drift
        half = side * min(width, height) / 2 + np.linspace(0, 7.3, n)[:, None]
        boxes = np.concatenate([centre - half, centre + half], 1).astype(np.float32)
        tracks.append(FaceTrack(track_id=track_id, frames=np.arange(track_id, track_id + n), boxes=boxes,
                                scores=np.full(n, 0.9, np.float32)))
    for track_id, first, crops in iter_track_crops(path, tracks, size=112, chunk=8):
        track = tracks[track_id]
        for offset, crop in enumerate(crops):
            index = first + offset
            expected = crop_face(frames[index], track.boxes[index - track.start_frame], size=112)
            np.testing.assert_array_equal(crop, expected)
