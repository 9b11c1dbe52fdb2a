"""Training footage for the landmark members: who speaks, what stays out, how it is aligned, and the
multi-way objective they are trained with."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import SHARED
from syncnet_fcn.lip_lag import MAX_LAG, lag_curve
from syncnet_fcn.training_corpus import (
    EVALUATION_SPEAKERS,
    EVALUATION_TEST_SETS,
    HARVEST,
    TrainingClip,
    list_training_clips,
    measure_sync,
    speaker_groups,
    speakers_of_key,
    split_by_speaker,
)

TRAIN = SHARED / "train"
needs_harvest = pytest.mark.skipif(not (TRAIN / HARVEST / "manifest.json").exists(), reason="../shared/train/harvest2 not present")


def test_a_key_naming_several_possible_speakers_joins_them_into_one_group():
    assert speakers_of_key("GRID:s30/s33/s34(dr-pato 800ms/ex1)") == ("GRID:s30", "GRID:s33", "GRID:s34")
    assert speakers_of_key("GRID:s4") == ("GRID:s4",)
    assert speakers_of_key("YT:abc") == ("YT:abc",)
    clips = [TrainingClip(SHARED / f"{i}.mp4", HARVEST, speakers, "page") for i, speakers in
             enumerate([("GRID:s30", "GRID:s33"), ("GRID:s33",), ("GRID:s34",), ("GRID:s34", "GRID:s30"), ("YT:x",)])]
    groups = speaker_groups(clips)
    assert len(set(groups[:4])) == 1 and groups[4] != groups[0]


@needs_harvest
def test_split_has_no_speaker_on_both_sides_and_keeps_evaluation_speakers_out_of_training():
    clips = list_training_clips(TRAIN)
    split = split_by_speaker(clips)
    train_speakers = {s for c in split.train for s in c.speakers}
    validation_speakers = {s for c in split.validation for s in c.speakers}
    assert not train_speakers & validation_speakers
    assert not train_speakers & set(EVALUATION_SPEAKERS)
    # test sets the evaluation clips come from (speakers unnamed) are never trained on
    assert not any(s.startswith(EVALUATION_TEST_SETS) for s in train_speakers)
    assert any(s.startswith(EVALUATION_TEST_SETS) for s in validation_speakers)
    # GRID s1 is an evaluation speaker: the grid_s1 corpus and harvest2's s1 clips are excluded
    assert all(c.corpus != "grid_s1" for c in split.train + split.validation)
    assert any("GRID:s1" in reason for reason in split.excluded.values())
    harvest = [c for c in split.train + split.validation if c.corpus == HARVEST]
    assert 0.2 <= sum(c.corpus == HARVEST for c in split.validation) / len(harvest) <= 0.45
    # the split is reproducible
    again = split_by_speaker(clips)
    assert [c.name for c in again.validation] == [c.name for c in split.validation]


def test_sync_measure_aligns_a_late_source_and_drops_a_clip_out_of_step():
    rng = np.random.default_rng(1)

    def curve(lag):  # sound `lag` frames after the lips reads −lag
        lips = rng.normal(size=300)
        return lag_curve(lips, np.roll(lips, lag) + 0.5 * rng.normal(size=300))

    clips, curves = [], {}
    for i in range(10):
        clips.append(TrainingClip(SHARED / f"ref{i}.mp4", "lrc_ar", ("lrc_ar:presenters",), "lrc_ar"))
        curves[clips[-1].name] = curve(1)
    for i in range(10):  # a page whose sound is 2 frames later than the reference's
        clips.append(TrainingClip(SHARED / f"late{i}.mp4", HARVEST, (f"YT:{i}",), "late-page"))
        curves[clips[-1].name] = curve(3)
    clips.append(TrainingClip(SHARED / "dubbed.mp4", HARVEST, ("YT:d",), "late-page"))
    curves[clips[-1].name] = curve(-6)  # this one's sound is far off the page's lag
    sync = measure_sync(clips, curves.get)
    assert sync["reference"] == pytest.approx(-1, abs=0.3)
    late = sync["sources"]["late-page"]
    assert late["relative"] == pytest.approx(-2, abs=0.3)
    # delaying by the relative reading (a negative delay advances the sound) brings the page to the reference
    assert sync["delay"][clips[10].name] == pytest.approx(late["relative"])
    assert sync["delay"][f"{HARVEST}/dubbed"] is None
    assert sync["delay"][f"{HARVEST}/late0"] is not None and sync["delay"]["lrc_ar/ref0"] == 0.0
    assert MAX_LAG == 8


def test_same_recording_is_found_by_its_sound_even_cut_and_not_for_another_sentence_of_the_speaker():
    from syncnet_fcn.media import load_audio
    from syncnet_fcn.recordings import find_same_recordings

    training = TRAIN / "grid_s1"
    if not (training / "bbaf2n.mp4").exists():
        pytest.skip("../shared/train/grid_s1 not present")
    same = load_audio(training / "bbaf2n.mp4")
    other = load_audio(training / "bbaf4p.mp4")
    evaluation = {"grid_bbaf2n.mpg": load_audio(SHARED / "clips" / "grid_bbaf2n.mpg"),
                  "grid_sbwe5n.mpg": load_audio(SHARED / "clips" / "grid_sbwe5n.mpg")}
    # a 1.2 s Arabic word clip slid along a minute of other speech finds a chance match near 0.95
    word = load_audio(TRAIN / "lrc_ar" / "06912.mp4") if (TRAIN / "lrc_ar" / "06912.mp4").exists() else other
    evaluation["edtalk_pose_source2.mp4"] = load_audio(SHARED / "clips" / "edtalk_pose_source2.mp4")
    found = find_same_recordings({"same": same, "cut": same[8000:40000], "other": other, "word": word}, evaluation)
    assert set(found) == {"same", "cut"}
    assert "grid_bbaf2n.mpg" in found["cut"]


def test_the_objective_ignores_frames_that_see_the_excerpts_padded_ends():
    from syncnet_fcn.landmark_training import EDGE_FRAMES, shift_masks

    masks = shift_masks(31, 15).numpy()
    assert masks.shape == (31, 31, 31)
    assert not masks[:, :EDGE_FRAMES].any() and not masks[:, :, -EDGE_FRAMES:].any()
    # shift s pairs lips frame i with sound frame i − s
    k, i, j = np.argwhere(masks)[0]
    assert i - j == k - 15
    # every shift within ±(interior − 1) still has pairs
    assert (masks.sum(axis=(1, 2))[1:-1] > 0).all()


def test_training_on_a_few_real_clips_lowers_the_multiway_loss(tmp_path):
    from syncnet_fcn.landmark_training import Recipe, load_track, track_features, train_member
    from syncnet_fcn.landmark.mouth import compact_landmarks, mouth_appearance

    videos = sorted((TRAIN / "lrc_ar").glob("*.mp4"))[:4]
    if len(videos) < 4:
        pytest.skip("../shared/train/lrc_ar not present")
    tracks = []
    for video in videos:
        t = load_track(TrainingClip(video, "lrc_ar", ("lrc_ar:presenters",), "lrc_ar"), tmp_path)
        found = np.isfinite(t["landmarks"]).all(axis=(1, 2))
        tracks.append({"landmarks": compact_landmarks(t["landmarks"]), "audio": t["audio"], "delay": 0.0,
                       "appearance": mouth_appearance(t["mouth_images"], found)})
    recipe = Recipe(steps=60, batch=8, lr=3e-3)
    features = track_features(tracks, "lips", recipe)
    assert len(features) == 2 * len(tracks)  # each track and its noisy-sound copy
    # the copy shares the lips and the frames with sound, and its sound features differ
    assert np.array_equal(features[0].mouth, features[1].mouth) and not np.allclose(features[0].audio, features[1].audio)
    _, losses = train_member(features, recipe, seed=0)
    assert np.mean(losses[-15:]) < np.mean(losses[:15]) - 0.2, (losses[:15], losses[-15:])


@needs_harvest
def test_the_shipped_calibration_is_measured_on_training_speakers_only(monkeypatch):
    """``--calibrate-only`` and training both calibrate on the training side of the split: no
    validation clip and no evaluation speaker reaches the calibration, and no command calibrates the
    landmark engine on ``../shared/clips`` any more."""
    import syncnet_fcn.landmark_training as lt
    from syncnet_fcn.landmark.__main__ import main as landmark_main

    split = split_by_speaker(list_training_clips(TRAIN))
    clips = split.train + split.validation
    # every clip "has a track" and reads in sync: what the calibration picks is the split's doing
    footage = {"split": split, "sync": {"delay": {c.name: 0.0 for c in clips}},
               "tracks": {c.name: {"landmarks": None, "audio": None, "appearance": None} for c in clips}}
    seen = []
    monkeypatch.setattr(lt, "calibrate_on_footage", lambda tracks, models: seen.extend(tracks) or {})
    lt.calibrate_on_training_speakers(footage, models=None)
    names = {t["name"] for t in seen}
    train = {c.name: c for c in split.train}
    assert names and names <= set(train)
    assert not names & {c.name for c in split.validation}
    assert not {s for n in names for s in train[n].speakers} & set(EVALUATION_SPEAKERS)
    with pytest.raises(SystemExit) as refused:
        landmark_main(["calibrate", str(SHARED / "clips")])
    assert refused.value.code == 2
