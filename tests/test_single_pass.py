"""One decoding pass: the same face tracks and the same crop pixels as tracking, then cropping."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from conftest import write_test_video
from syncnet_fcn.crops import iter_track_crops
from syncnet_fcn.media import iter_frames
from syncnet_fcn.single_pass import CropChunk, TrackDropped, TrackFound, TrackOpened, iter_tracks_with_crops
from syncnet_fcn.tracking import TrackingOptions, find_face_tracks, number_tracks


def two_passes(path, options):
    tracks = find_face_tracks(path, options=options)
    crops: dict[int, list] = {}
    for track_id, first, chunk in iter_track_crops(path, tracks, chunk=32):
        crops.setdefault(track_id, []).append((first, chunk))
    return tracks, crops


def one_pass(path, options, memory_crops):
    found, crops = {}, {}
    for event in iter_tracks_with_crops(path, options=options, chunk=32, memory_crops=memory_crops):
        if isinstance(event, TrackFound):
            assert event.key not in found, "a track is announced once"
            found[event.key] = event.track
        else:
            assert isinstance(event, CropChunk) and event.key in found, "crops come after their track"
            crops.setdefault(event.key, []).append((event.first_frame, event.crops))
    key_of = {id(track): key for key, track in found.items()}
    tracks = number_tracks(list(found.values()))
    return tracks, {track.track_id: crops.get(key_of[id(track)], []) for track in tracks}


def one_pass_early(path, options):
    """``early=True``: crops come while their track is followed, the track after its last crop."""
    opened, found, crops = {}, {}, {}
    first_found_at, events = None, 0
    for event in iter_tracks_with_crops(path, options=options, chunk=32, early=True):
        events += 1
        if isinstance(event, TrackOpened):
            assert event.key not in opened, "a track is opened once"
            opened[event.key] = event.start_frame
        elif isinstance(event, CropChunk):
            assert event.key in opened and event.key not in found, "crops come between opening and end"
            crops.setdefault(event.key, []).append((event.first_frame, event.crops))
        elif isinstance(event, TrackFound):
            assert event.key in opened and event.key not in found
            assert opened[event.key] == event.track.start_frame
            got = sum(len(c) for _, c in crops.get(event.key, []))
            assert got == event.track.n_frames, "every crop of a track comes before it is found"
            found[event.key] = event.track
            first_found_at = first_found_at or events
        else:
            assert isinstance(event, TrackDropped) and event.key in opened
            crops.pop(event.key, None)
    key_of = {id(track): key for key, track in found.items()}
    tracks = number_tracks(list(found.values()))
    return tracks, {track.track_id: crops.get(key_of[id(track)], []) for track in tracks}, first_found_at


def assert_same(path, memory_crops):
    # crops are cut from fully decoded frames, so the two-pass reference decodes fully too
    options = TrackingOptions(fast_decode=False)
    ref_tracks, ref_crops = two_passes(path, options)
    tracks, crops = one_pass(path, options, memory_crops)
    assert ref_tracks, "the clip must have a face track for the comparison to mean anything"
    assert len(tracks) == len(ref_tracks)
    for ref, got in zip(ref_tracks, tracks):
        assert (got.track_id, got.start_frame, got.end_frame) == (ref.track_id, ref.start_frame, ref.end_frame)
        np.testing.assert_array_equal(got.boxes, ref.boxes)
        np.testing.assert_array_equal(got.scores, ref.scores)
        assert [first for first, _ in crops[got.track_id]] == [first for first, _ in ref_crops[ref.track_id]]
        for (_, mine), (_, theirs) in zip(crops[got.track_id], ref_crops[ref.track_id]):
            np.testing.assert_array_equal(mine, theirs)
    early_tracks, early_crops, _ = one_pass_early(path, options)
    assert len(early_tracks) == len(ref_tracks)
    for ref, got in zip(ref_tracks, early_tracks):
        assert (got.start_frame, got.end_frame) == (ref.start_frame, ref.end_frame)
        np.testing.assert_array_equal(got.boxes, ref.boxes)
        assert [first for first, _ in early_crops[got.track_id]] == [first for first, _ in ref_crops[ref.track_id]]
        for (_, mine), (_, theirs) in zip(early_crops[got.track_id], ref_crops[ref.track_id]):
            np.testing.assert_array_equal(mine, theirs)
    return tracks


def test_one_pass_equals_two_passes_across_a_scene_cut(tmp_path, clip):
    """Two real talking faces joined by a hard cut; crops spill to disk beyond 40 in memory."""
    frames = []
    for name, start in (("mimictalk_German_20s.mp4", 0), ("edtalk_pose_source2.mp4", 100)):
        for _, image in iter_frames(clip(name), start_frame=start, end_frame=start + 70):
            frames.append(cv2.resize(image, (320, 320), interpolation=cv2.INTER_AREA))
    path = write_test_video(tmp_path / "joined.mp4", frames)
    tracks = assert_same(path, memory_crops=40)
    assert len(tracks) >= 2 and max(t.end_frame for t in tracks if t.start_frame < 70) < 70


@pytest.mark.slow
def test_one_pass_equals_two_passes_with_two_faces(clip):
    assert_same(clip("visualvoice_interview.mp4"), memory_crops=512)


def test_early_crops_come_while_the_track_is_followed(tmp_path, clip):
    """One 8 s face: with ``early`` its crops are handed out while the video is still being decoded
    (an engine can work on them meanwhile), not all after the last frame."""
    frames = [cv2.resize(image, (320, 320), interpolation=cv2.INTER_AREA)
              for _, image in iter_frames(clip("edtalk_pose_source2.mp4"), start_frame=0, end_frame=200)]
    path = write_test_video(tmp_path / "one_face.mp4", frames)
    decoded = [0]
    decoded_at_chunk = []
    for event in iter_tracks_with_crops(path, options=TrackingOptions(fast_decode=False), chunk=32, early=True,
                                        progress=lambda done, total: decoded.__setitem__(0, done)):
        if isinstance(event, CropChunk):
            decoded_at_chunk.append(decoded[0])
    assert len(decoded_at_chunk) == -(-200 // 32)
    # without early every chunk would come after all 200 frames; here most come before the end (the
    # last ones wait for the boxes to settle and the track to end)
    assert decoded_at_chunk[0] <= 75 and sum(d < 200 for d in decoded_at_chunk) >= 4, decoded_at_chunk
