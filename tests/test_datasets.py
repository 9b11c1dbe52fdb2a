"""Training-set cache: crops identical to inference crops, audio on the same timeline, speaker split."""

from __future__ import annotations

import numpy as np
import pytest

from syncnet_fcn import SAMPLES_PER_FRAME
from syncnet_fcn.datasets import (
    EVALUATION_DUPLICATES,
    ClipEntry,
    TrainingSet,
    appearance_groups,
    build_training_set,
    cut_clip,
    input_key,
    list_clips,
    load_training_set,
    split_by_speaker,
)
from syncnet_fcn.errors import InvalidArgumentError
from syncnet_fcn.model import SyncNetConfig

SHORT_CLIP = "lrw_astorfi_sample1.mp4"  # 1.2 s, one face: the shape of an LRC-AR word clip


def fake_set(groups: list[int], corpus: str = "lrc_ar", n_frames: int = 8) -> TrainingSet:
    """Clips whose appearance descriptors form tight clusters, one cluster per entry of ``groups``."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(max(groups) + 1, 32))
    descriptors = np.stack([centres[g] + 0.01 * rng.normal(size=32) for g in groups]).astype(np.float32)
    clips = [ClipEntry(f"{corpus}/{k:05d}", corpus, k * n_frames, n_frames, 0) for k in range(len(groups))]
    frames = np.zeros((len(groups) * n_frames, 1, 4, 4), np.uint8)
    audio = np.zeros(len(frames) * SAMPLES_PER_FRAME, np.int16)
    return TrainingSet(clips, frames, audio, descriptors, {"skipped": []})


# -- split ---------------------------------------------------------------------------------------------


def test_appearance_groups_recover_tight_clusters():
    data = fake_set([0, 0, 1, 2, 1, 2, 0])
    labels = appearance_groups(data.descriptors)
    assert labels[0] == labels[1] == labels[6]
    assert labels[2] == labels[4] and labels[3] == labels[5]
    assert len(set(labels.tolist())) == 3


def test_split_keeps_every_group_on_one_side_and_is_seeded():
    groups = [k % 20 for k in range(200)]
    data = fake_set(groups)
    split = split_by_speaker(data, val_fraction=0.1, seed=3)
    assert sorted(split.train + split.val) == list(range(200))
    val_groups = {split.groups[data.clips[i].name] for i in split.val}
    train_groups = {split.groups[data.clips[i].name] for i in split.train}
    assert val_groups and not (val_groups & train_groups)
    assert 10 <= len(split.val) <= 40
    assert split_by_speaker(data, val_fraction=0.1, seed=3).val == split.val
    assert split_by_speaker(data, val_fraction=0.1, seed=4).val != split.val


def test_single_speaker_corpus_holds_out_sentences():
    data = fake_set([0] * 30, corpus="grid_s1")
    split = split_by_speaker(data, val_fraction=0.2)
    assert len(split.val) == 6 and "single speaker" in split.notes["grid_s1"]


def test_evaluation_duplicates_stay_out_of_both_sides():
    name = next(iter(EVALUATION_DUPLICATES))
    data = fake_set([0] * 10, corpus="grid_s1")
    data.clips[4] = ClipEntry(name, "grid_s1", data.clips[4].start, data.clips[4].n_frames, 0)
    split = split_by_speaker(data, val_fraction=0.2)
    assert 4 not in split.train + split.val and name in split.notes["excluded"]


def test_bad_val_fraction_is_a_user_error():
    with pytest.raises(InvalidArgumentError):
        split_by_speaker(fake_set([0, 1]), val_fraction=1.0)


def test_inconsistent_cache_is_refused():
    with pytest.raises(ValueError):
        TrainingSet([], np.zeros((2, 1, 4, 4), np.uint8), np.zeros(100, np.int16), np.zeros((0, 4)), {})


def test_missing_corpus_is_a_user_error(tmp_path):
    with pytest.raises(InvalidArgumentError, match="lrc_ar"):
        list_clips(tmp_path, ("lrc_ar",))


def test_input_key_names_the_layout():
    assert input_key(SyncNetConfig.light()) == "mouth_1x64x128"
    assert input_key(SyncNetConfig.official()) == "face_3x224x224"


# -- real footage --------------------------------------------------------------------------------------


def test_cut_clip_matches_inference_crops_and_audio(clip):
    """The cache holds exactly what the engines compute from the same video."""
    from syncnet_fcn.crops import iter_track_crops
    from syncnet_fcn.datasets import DETECT_EVERY, MIN_TRACK_FRAMES
    from syncnet_fcn.media import load_audio
    from syncnet_fcn.model import prepare_video
    from syncnet_fcn.tracking import TrackingOptions, find_face_tracks

    path = clip(SHORT_CLIP)
    config = SyncNetConfig.light()
    cut = cut_clip(path, config)
    assert cut is not None and cut.frames.dtype == np.uint8
    n = len(cut.frames)
    assert cut.frames.shape == (n, 1, 64, 128) and n >= MIN_TRACK_FRAMES
    assert cut.audio.dtype == np.int16 and len(cut.audio) == n * SAMPLES_PER_FRAME

    options = TrackingOptions(min_track_frames=MIN_TRACK_FRAMES, detect_every=DETECT_EVERY)
    track = max(find_face_tracks(path, options=options), key=lambda t: t.n_frames)
    crops = np.concatenate([c for _, _, c in iter_track_crops(path, [track], size=224)])
    expected = prepare_video(crops, config)[0].numpy().transpose(1, 0, 2, 3) / config.pixel_scale
    assert np.abs(cut.frames.astype(np.float32) - expected).max() <= 0.5 + 1e-3  # only uint8 rounding
    start = track.start_frame * SAMPLES_PER_FRAME
    assert np.array_equal(cut.audio, load_audio(path)[start : start + n * SAMPLES_PER_FRAME])


def test_build_caches_shards_and_reuses_them(clip, tmp_path, monkeypatch):
    root = tmp_path / "train"
    (root / "lrc_ar").mkdir(parents=True)
    for name in ("lrw_astorfi_sample1.mp4", "lrw_astorfi_sample2.mp4"):
        (root / "lrc_ar" / name).symlink_to(clip(name))
    config = SyncNetConfig.light()
    data = build_training_set(root, config, cache_dir=tmp_path / "cache", corpora=("lrc_ar",), progress=False)
    assert [c.name for c in data.clips] == ["lrc_ar/lrw_astorfi_sample1", "lrc_ar/lrw_astorfi_sample2"]
    assert len(data.audio) == len(data.frames) * SAMPLES_PER_FRAME
    assert data.summary()["lrc_ar"]["clips"] == 2

    import syncnet_fcn.datasets as datasets

    def no_recut(*_args, **_kwargs):
        raise AssertionError("a cached shard was cut again")

    monkeypatch.setattr(datasets, "cut_clip", no_recut)
    again = build_training_set(root, config, cache_dir=tmp_path / "cache", corpora=("lrc_ar",), progress=False)
    assert np.array_equal(again.frames, data.frames)
    reloaded = load_training_set(config, tmp_path / "cache", corpora=("lrc_ar",), limit=1)
    assert len(reloaded) == 1 and np.array_equal(reloaded.frames_of(0), data.frames_of(0))


def test_loading_an_unbuilt_cache_is_a_user_error(tmp_path):
    with pytest.raises(InvalidArgumentError, match="no cached training clips"):
        load_training_set(SyncNetConfig.light(), tmp_path, corpora=("lrc_ar",))
