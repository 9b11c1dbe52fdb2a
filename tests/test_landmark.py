"""The embedded landmark engine: mouth features, audio features, readings of real clips with known
sample-level shifts, the no-speech / wrong-audio case and the stored calibration."""

from __future__ import annotations

import json

import numpy as np
import pytest

from syncnet_fcn.engines.base import TrackSync
from syncnet_fcn.engines.landmark import LandmarkEngine
from syncnet_fcn.landmark.audio_features import audio_frame_features, heard_frames
from syncnet_fcn.landmark.models import CALIBRATION_PATH, landmark_available, load_calibration, load_models
from syncnet_fcn.landmark.reading import frame_scores, local_confidence, score_track
from syncnet_fcn.errors import InvalidArgumentError
from syncnet_fcn.evaluation import leave_one_corpus_out, own_offset
from syncnet_fcn.media import load_audio, shift_audio
from syncnet_fcn.landmark.mouth import MOUTH_ROI_SHAPE, FaceMeshTracker, compact_landmarks, mouth_appearance, mouth_features

pytestmark = pytest.mark.skipif(not landmark_available()[0], reason=landmark_available()[1])

MAX_OFFSET = 15


# ----------------------------------------------------------------------------------------------------
# helpers: one track's landmarks, computed once per clip for the whole module


_LANDMARK_CACHE: dict = {}


def clip_observations(path):
    """``(landmarks, mouth images, whole audio, track)`` of the clip's longest face track, via the
    real tracking and crops."""
    key = str(path)
    if key not in _LANDMARK_CACHE:
        from syncnet_fcn.crops import iter_track_crops
        from syncnet_fcn.tracking import find_face_tracks

        tracks = find_face_tracks(path)
        assert tracks, f"no face track in {path}"
        track = max(tracks, key=lambda t: t.n_frames)
        mesh = FaceMeshTracker()
        chunks = [mesh.process_with_mouth(crops) for _, _, crops in iter_track_crops(path, [track])]
        mesh.close()
        audio = load_audio(path)
        _LANDMARK_CACHE[key] = (np.concatenate([c[0] for c in chunks]), np.concatenate([c[1] for c in chunks]), audio, track)
    return _LANDMARK_CACHE[key]


def clip_landmarks(path):
    """``(landmarks, whole audio, track)``: :func:`clip_observations` without the mouth images."""
    landmarks, _, audio, track = clip_observations(path)
    return landmarks, audio, track


def read(path, audio):
    """The engine's reading of the clip's main track with ``audio`` (the track's span of it)."""
    landmarks, images, _, track = clip_observations(path)
    return score_track(landmarks, audio, MAX_OFFSET, mouth_images=images)


def track_span(audio, track):
    from syncnet_fcn.evaluation import track_audio

    return track_audio(audio, track.start_frame, track.n_frames)


# ----------------------------------------------------------------------------------------------------
# features


def _rotation(yaw, pitch, roll):
    cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    return rz @ ry @ rx


def test_mouth_features_ignore_head_pose_and_size(clip):
    landmarks, _, _ = clip_landmarks(clip("syncnet_example.avi"))
    frames = landmarks[:60].astype(np.float64)
    features, valid = mouth_features(frames)
    assert valid.all() and np.isfinite(features).all()
    # the same faces turned, tilted, scaled by 1.7 and moved: the same mouth numbers
    rng = np.random.default_rng(0)
    moved = np.empty_like(frames)
    for i, f in enumerate(frames):
        r = _rotation(*rng.uniform(-0.3, 0.3, 3))
        moved[i] = 1.7 * f @ r.T + rng.uniform(-50, 50, 3)
    moved_features, _ = mouth_features(moved)
    np.testing.assert_allclose(moved_features, features, atol=1e-4)
    # …while the lips' movement is there: inner-lip opening varies over a second of speech
    assert features[:, 3].std() > 0.02


def test_mouth_features_mark_frames_without_a_face():
    landmarks = np.random.default_rng(1).normal(100, 20, (12, 468, 3)).astype(np.float32)
    landmarks[[2, 7]] = np.nan
    features, valid = mouth_features(landmarks)
    assert valid.tolist() == [i not in (2, 7) for i in range(12)]
    assert np.isnan(features[2]).all() and np.isfinite(features[valid]).all()


def test_mouth_images_follow_the_skull_not_the_frame(clip):
    """The mouth image is cut in a face frame fitted to rigid points: the same face moved and scaled
    in the crop gives the same image, while another mouth shape gives another image."""
    import cv2

    from syncnet_fcn.crops import iter_track_crops
    from syncnet_fcn.landmark.mouth import MouthRegion
    from syncnet_fcn.tracking import find_face_tracks

    path = clip("syncnet_example.avi")
    landmarks, images, _, _ = clip_observations(path)
    track = max(find_face_tracks(path), key=lambda t: t.n_frames)
    crops = next(iter_track_crops(path, [track], chunk=64))[2]
    region = MouthRegion()
    original = region.extract(crops[10], landmarks[10])
    other_mouth = region.extract(crops[40], landmarks[40])
    # the crop zoomed out and shifted, its landmarks moved with it
    matrix = np.array([[0.8, 0.0, 30.0], [0.0, 0.8, 12.0]])
    moved = cv2.warpAffine(crops[10], matrix, (224, 224), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    moved_points = landmarks[10].copy()
    moved_points[:, :2] = landmarks[10][:, :2] @ matrix[:, :2].T + matrix[:, 2]
    moved_points[:, 2] *= 0.8  # mediapipe's z is on the x scale
    again = MouthRegion().extract(moved, moved_points)
    assert again.shape == MOUTH_ROI_SHAPE
    difference = np.abs(again.astype(int) - original.astype(int)).mean()
    assert difference < 6, difference  # resampling blur only
    assert np.abs(other_mouth.astype(int) - original.astype(int)).mean() > 2 * difference


def test_mouth_appearance_is_low_frequencies_and_marks_missing_frames():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (6, *MOUTH_ROI_SHAPE)).astype(np.uint8)
    valid = np.array([True, True, False, True, True, True])
    features = mouth_appearance(images, valid)
    assert features.shape == (6, 47) and np.isnan(features[2]).all() and np.isfinite(features[valid]).all()
    # brightness and contrast do not change them (lighting); the image does
    brighter = np.clip(images.astype(float) * 0.5 + 60, 0, 255).astype(np.uint8)
    np.testing.assert_allclose(mouth_appearance(brighter, valid)[valid], features[valid], atol=0.05 * np.abs(features[valid]).max())
    assert np.abs(features[0] - features[1]).max() > 0.1


def test_audio_features_are_on_the_video_timeline():
    n_frames, pad = 50, 15
    audio = np.zeros(640 * n_frames, np.int16)
    rng = np.random.default_rng(0)
    audio[640 * 20 : 640 * 23] = rng.normal(0, 3000, 640 * 3).astype(np.int16)  # a burst in frames 20-22
    feats = audio_frame_features(audio, n_frames, pad)
    assert feats.shape[0] == n_frames + 2 * pad
    loud = np.flatnonzero(feats[:, 0] > feats[:, 0].min() + 3) - pad  # speech-band log energy
    assert loud.min() >= 19 and loud.max() <= 23 and {20, 21, 22} <= set(loud.tolist())


# ----------------------------------------------------------------------------------------------------
# readings


def test_track_sync_fields_have_the_engine_contract_shapes(clip):
    landmarks, audio, track = clip_landmarks(clip("syncnet_example.avi"))
    sync = read(clip("syncnet_example.avi"), track_span(audio, track))
    n = len(landmarks)
    assert isinstance(sync, TrackSync)
    assert sync.dists.shape == (n - 4, 2 * MAX_OFFSET + 1)
    assert sync.offsets.tolist() == list(range(-MAX_OFFSET, MAX_OFFSET + 1))
    assert sync.offset_curve.shape == (2 * MAX_OFFSET + 1,)
    assert sync.per_frame_confidence.shape == (n,)
    # the curve is the dists' column mean in offset order, and its minimum is the offset
    np.testing.assert_allclose(sync.offset_curve, sync.dists.mean(axis=0)[::-1])
    assert sync.offsets[np.argmin(sync.offset_curve)] == sync.offset_frames
    assert sync.min_dist == pytest.approx(sync.offset_curve.min())
    assert sync.reliable and sync.confidence >= load_calibration()["reliable_confidence"]


# Clips of four corpora, audio shifted at sample level; expected reading = own offset − shift.
SHIFTED_CASES = [
    ("syncnet_example.avi", (-7, 4)),
    ("grid_sbwe5n.mpg", (-12, 9)),
    ("lrs2_deepavsr_00001.mp4", (-3, 9)),
    ("pcavs_00015.mp4", (-12, 4)),
    # a 1.2 s BBC word: the members trained on LRC-AR and GRID s1 alone read it 2 frames early at
    # these shifts; trained with harvest2's speakers they read it right
    ("lrw_astorfi_sample1.mp4", (-3, -7, -12)),
]


@pytest.mark.parametrize("name,shifts", SHIFTED_CASES)
def test_reads_sample_level_shifts_of_real_clips(clip, name, shifts):
    _, audio, track = clip_landmarks(clip(name))
    for shift in (0, *shifts):
        sync = read(clip(name), track_span(shift_audio(audio, shift), track))
        expected = own_offset(name) - shift
        assert abs(sync.offset_frames - expected) <= 1, (name, shift, sync.offset_frames, expected)


def test_another_clips_audio_is_flagged_unreliable(clip):
    landmarks, _, track = clip_landmarks(clip("syncnet_example.avi"))
    n = len(landmarks)
    for other in ("pcavs_00104.mp4", "lrs2_deepavsr_00016.mp4"):
        foreign = load_audio(clip(other))
        foreign = np.resize(foreign, 640 * n)  # repeat if shorter
        sync = read(clip("syncnet_example.avi"), foreign)
        assert not sync.reliable, (other, sync.confidence)
        assert sync.confidence < load_calibration()["reliable_confidence"]
        assert "no reliable sync" in sync.note


def test_per_frame_confidence_follows_where_the_face_is_heard(clip):
    """Own voice for the first half of the track, another speaker's after: the per-frame confidence
    (the second around each frame) is high where the face is heard and not where it is not."""
    path = clip("syncnet_example.avi")
    landmarks, audio, track = clip_landmarks(path)
    own = track_span(audio, track)
    half = len(landmarks) // 2
    foreign = np.resize(load_audio(clip("lrs2_deepavsr_00016.mp4")), len(own)).astype(np.int16)
    mixed = np.concatenate([own[: 640 * half], foreign[640 * half :]])
    per_frame = read(path, mixed).per_frame_confidence
    assert per_frame.shape == (len(landmarks),)
    heard, not_heard = per_frame[25 : half - 25], per_frame[half + 25 : -25]
    assert np.median(heard) > np.median(not_heard), (np.median(heard), np.median(not_heard))
    assert np.mean(heard > load_calibration()["speaking_threshold"]) > np.mean(not_heard > load_calibration()["speaking_threshold"])


def test_per_frame_confidence_is_judged_at_the_tracks_offset():
    """A second where some other offset happens to stand out (another voice) is not evidence that this
    face is heard; only a gain at the track's offset (±1) is."""
    rng = np.random.default_rng(0)
    windows, shifts, track_column, stray_column = 200, 31, 12, 25
    dists = rng.normal(0.0, 0.05, (windows, shifts))
    dists[:100, track_column] -= 1.0  # own voice: the track's offset stands out
    dists[100:, stray_column] -= 1.0  # someone else's voice: a different offset stands out
    per_frame = local_confidence(dists, windows + 4, offset_index=track_column)
    assert per_frame.shape == (windows + 4,)
    assert np.median(per_frame[20:90]) > 3.0
    assert np.median(per_frame[120:-20]) < 0.5
    # a neighbour of the track's offset still counts (the offset is read to ±1)
    shifted = np.roll(dists, 1, axis=1)
    assert np.median(local_confidence(shifted, windows + 4, offset_index=track_column)[20:90]) > 3.0


def test_silence_is_flagged_unreliable(clip):
    landmarks, _, _ = clip_landmarks(clip("grid_sbwe5n.mpg"))
    sync = read(clip("grid_sbwe5n.mpg"), np.zeros(640 * len(landmarks), np.int16))
    assert not sync.reliable and "no reliable sync" in sync.note and "digital silence" in sync.note
    assert sync.min_dist is None


def test_heard_frames_tell_missing_audio_from_a_quiet_room():
    rng = np.random.default_rng(0)
    audio = rng.integers(-1, 2, 640 * 10).astype(np.int16)  # ±1 LSB: quiet, but there
    audio[640 * 3 : 640 * 6] = 0
    audio[640 * 3 + 5] = 1  # one sample of sound keeps frame 3
    heard = heard_frames(audio[: 640 * 9 + 100], 11)  # ends inside frame 9; frame 10 has no samples
    assert heard.tolist() == [True] * 4 + [False, False] + [True] * 4 + [False]


def test_digital_silence_is_scored_like_audio_beyond_the_track(clip):
    """A muted stretch says nothing about sync: every pair that hears it scores a typical 0 (as pairs
    beyond the track's ends do), not a quiet frame's match with closed lips."""
    landmarks, images, audio, track = clip_observations(clip("lrs2_deepavsr_00024.mp4"))
    span = track_span(audio, track).copy()
    muted = slice(40, 70)
    span[muted.start * 640 : muted.stop * 640] = 0
    scores, _ = frame_scores(landmarks, span, MAX_OFFSET, load_models(), 0.0, images)
    frames = np.arange(len(landmarks))
    for k, offset in enumerate(range(MAX_OFFSET, -MAX_OFFSET - 1, -1)):
        hears_muted = (frames - offset >= muted.start) & (frames - offset < muted.stop)
        assert np.all(scores[hears_muted, k] == 0), offset
        assert np.count_nonzero(scores[~hears_muted & (frames - offset >= 0) & (frames - offset < len(frames)), k]) > 0
    # the rest of the track still reads the clip's own offset, also with the audio delayed around the gap
    for shift in (0, 7):
        sync = score_track(landmarks, shift_audio(span, shift), MAX_OFFSET, mouth_images=images)
        assert abs(sync.offset_frames - (own_offset("lrs2_deepavsr_00024.mp4") - shift)) <= 1, shift


def test_no_face_mesh_gives_no_reading_instead_of_an_offset():
    landmarks = np.full((40, 468, 3), np.nan, np.float32)
    audio = np.random.default_rng(0).normal(0, 1000, 640 * 40).astype(np.int16)
    sync = score_track(landmarks, audio, MAX_OFFSET, mouth_images=np.zeros((40, *MOUTH_ROI_SHAPE), np.uint8))
    assert not sync.reliable and sync.min_dist is None and "face mesh" in sync.note
    assert sync.dists.shape == (36, 31)


def test_engine_runs_through_the_pipeline_on_a_shifted_clip(clip):
    from syncnet_fcn.pipeline import SyncPipeline

    path = clip("syncnet_example.avi")
    pipe = SyncPipeline(engine="landmark")
    tracks = pipe.find_tracks(path)
    report = pipe.analyze(path, tracks=tracks, audio=shift_audio(load_audio(path), 9))["landmark"]
    assert abs(report.offset_frames - (3 - 9)) <= 1
    assert report.tracks[0].sync.dists.shape[1] == 31


def test_the_compact_mesh_and_appearance_the_pipeline_keeps_read_exactly_like_the_whole_mesh(clip):
    """The pipeline keeps of each frame only the mesh's feature points and the mouth image's low
    frequencies (about 1 kB, not 7): the reading must be the one the whole mesh and images give."""
    landmarks, images, audio, track = clip_observations(clip("lrs2_deepavsr_00001.mp4"))
    span = track_span(shift_audio(audio, 4), track)
    whole = score_track(landmarks, span, MAX_OFFSET, mouth_images=images)
    found = np.isfinite(landmarks).all(axis=(1, 2))
    compact = compact_landmarks(landmarks)
    assert compact.nbytes * 7 < landmarks.nbytes
    kept = score_track(compact, span, MAX_OFFSET, appearance=mouth_appearance(images, found))
    np.testing.assert_array_equal(kept.dists, whole.dists)
    assert (kept.offset_frames, kept.confidence) == (whole.offset_frames, whole.confidence)


def test_a_long_track_is_scored_in_pieces_and_still_reads_its_shift(clip, monkeypatch):
    """A track hours long is scored in pieces of bounded length (memory): the same shapes, the shift
    still read, and a piece where the mesh lost the face counts as typical pairs, not as an error."""
    import syncnet_fcn.landmark.reading as reading

    path = clip("syncnet_example.avi")
    landmarks, images, audio, track = clip_observations(path)
    span = track_span(shift_audio(audio, -7), track)
    expected = own_offset("syncnet_example.avi") + 7
    whole = score_track(landmarks, span, MAX_OFFSET, mouth_images=images)
    monkeypatch.setattr(reading, "SCORING_PIECE_FRAMES", 110)  # 317 frames: three pieces of 105-106
    pieces = score_track(landmarks, span, MAX_OFFSET, mouth_images=images)
    assert pieces.dists.shape == whole.dists.shape and pieces.per_frame_confidence.shape == (len(landmarks),)
    assert not np.array_equal(pieces.dists, whole.dists)  # each piece standardised on its own
    assert abs(pieces.offset_frames - expected) <= 1 and pieces.reliable
    lost = landmarks.copy()
    lost[212:] = np.nan  # the last piece has no face mesh at all
    scores = reading.piecewise_frame_scores(lost, span, MAX_OFFSET, load_models(), 0.0, images)
    assert np.all(scores[212:] == 0) and np.count_nonzero(scores[:212]) > 0
    assert abs(score_track(lost, span, MAX_OFFSET, mouth_images=images).offset_frames - expected) <= 1


def test_too_short_tracks_are_refused():
    engine = LandmarkEngine()
    with pytest.raises(InvalidArgumentError):
        engine.start_track(np.zeros(640 * 3, np.int16), 3)


# ----------------------------------------------------------------------------------------------------
# calibration


def test_stored_calibration_holds_up_leaving_each_corpus_out():
    calibration = json.loads(CALIBRATION_PATH.read_text())
    errors = calibration["bias_measurement"]["errors"]
    assert len(errors) >= 20
    # the bar for the best of several faces on screen sits below the lone-face bar
    assert 0 < calibration["relative_speaking_threshold"] < calibration["speaking_threshold"]
    assert LandmarkEngine().relative_speaking_threshold == calibration["relative_speaking_threshold"]
    report = leave_one_corpus_out(errors)
    # the stored bias is the one its own measurements give
    assert calibration["bias_frames"] == pytest.approx(report["bias_all"], abs=1e-6)
    for corpus, held in report["corpora"].items():
        # a bias fitted without the corpus is within half a frame of the one fitted on everything…
        assert abs(held["bias_without_it"] - report["bias_all"]) < 0.5, corpus
        # …and reads that corpus as well as the all-corpora bias does (one clip may flip by rounding)
        slack = max(0.1, 1.0 / held["clips"])
        assert held["correct_with_held_out_bias"] >= held["correct_with_all_bias"] - slack - 1e-9, corpus


@pytest.mark.slow
def test_stored_bias_measurements_match_the_current_engine():
    """The calibration was measured with this engine on training tracks (their sound delayed by the
    page's measured lag): re-measure three of them from the videos and compare."""
    from conftest import SHARED
    from syncnet_fcn.landmark_training import bias_error
    from syncnet_fcn.landmark.training import track_landmarks

    measurement = json.loads(CALIBRATION_PATH.read_text())["bias_measurement"]
    stored, delays = measurement["errors"], measurement["delays"]
    for name in sorted(stored)[:3]:
        corpus, stem = name.split("/")
        videos = sorted((SHARED / "train" / corpus).glob(f"{stem}.*"))
        if not videos:
            pytest.skip(f"../shared/train/{name} not present")
        track = max(track_landmarks(videos[0]), key=lambda t: len(t["landmarks"]))
        audio = shift_audio(track["audio"], delays[name])
        error = bias_error(track["landmarks"], audio, load_models(), MAX_OFFSET, mouth_images=track["mouth_images"])
        assert error == pytest.approx(stored[name], abs=0.15), name


# ----------------------------------------------------------------------------------------------------
# fitting the stored models


def test_fit_builds_members_for_lips_and_mouth_images_that_save_and_load(tmp_path):
    """``python -m syncnet_fcn.landmark fit``: one member per (visual features, seed), from
    face-crop clips and tracked full-frame clips, stored and read back with the same scores."""
    from conftest import SHARED
    from syncnet_fcn.landmark.features import VISUAL_LIPS, VISUAL_LIPS_APPEARANCE
    from syncnet_fcn.landmark.models import LandmarkModels
    from syncnet_fcn.landmark.training import fit

    cropped = sorted((SHARED / "train" / "lrc_ar").glob("*.mp4"))[:6]
    tracked = sorted((SHARED / "train" / "grid_s1").glob("*.mp4"))[:3]  # bbaf2n: an evaluation clip
    if len(cropped) < 6 or len(tracked) < 3:
        pytest.skip("../shared/train not present")
    models = fit(cropped, tracked, cache=tmp_path / "cache", steps=30, seeds=(0, 1), log=None)
    assert [(m.visual) for m in models.members] == [VISUAL_LIPS, VISUAL_LIPS, VISUAL_LIPS_APPEARANCE, VISUAL_LIPS_APPEARANCE]
    assert models.members[0].net.mouth[0].in_channels + 47 == models.members[2].net.mouth[0].in_channels
    counts = [m["tracks"] for m in models.provenance["members"]]
    assert len(set(counts)) == 1 and 6 <= counts[0] <= 8, counts
    assert (tmp_path / "cache" / "grid_s1" / f"{tracked[1].name}.npz").exists()
    # the training clip that is the same recording as ../shared/clips/grid_bbaf2n.mpg is left out
    assert tracked[0].stem == "bbaf2n" and not (tmp_path / "cache" / "grid_s1" / "bbaf2n.mp4.npz").exists()
    models.save(tmp_path / "models.pt")
    loaded = LandmarkModels.load(tmp_path / "models.pt")
    landmarks, images, audio, track = clip_observations(SHARED / "clips" / "grid_sbwe5n.mpg")
    span = track_span(audio, track)
    before, valid = frame_scores(landmarks, span, MAX_OFFSET, models, mouth_images=images)
    after, _ = frame_scores(landmarks, span, MAX_OFFSET, loaded, mouth_images=images)
    np.testing.assert_allclose(after, before, atol=0.05)  # the nets are stored in fp16
    assert valid.mean() > 0.9
