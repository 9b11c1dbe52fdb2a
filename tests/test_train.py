"""Training loop: batch alignment, the contrastive objective, validation metric, checkpoints, resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from syncnet_fcn import SAMPLES_PER_FRAME
from syncnet_fcn.audio import mfcc, mfcc_windows
from syncnet_fcn.datasets import ClipEntry, TrainingSet
from syncnet_fcn.errors import InvalidArgumentError
from syncnet_fcn.model import SyncNet, SyncNetConfig, load_model
from syncnet_fcn.train import (
    TrainConfig,
    augment_audio,
    augment_video,
    candidate_mask,
    embed_video,
    evaluate,
    learning_rate,
    model_config_for,
    neutral_padding_shift,
    offset_curve,
    sample_batch,
    sync_loss,
    train,
)

# Tiny widths: the tests exercise the loop, not the capacity.
TINY = dict(model="light", video_widths=(4, 8, 8, 8, 8, 16), audio_widths=(4, 8, 8, 8, 8, 16), embedding_dim=16)


def tiny_config() -> SyncNetConfig:
    return model_config_for(TrainConfig(**TINY))


def synthetic_set(n_clips: int = 6, n_frames: int = 30, seed: int = 0, corpora=("lrc_ar",)) -> TrainingSet:
    """Clips whose picture follows their sound: a dark 'mouth' band opens with the frame's loudness.

    Each clip's loudness envelope is random per frame, so a model can only tell which audio belongs to
    which frames by matching the two in time: a learnable sync task in miniature.
    """
    rng = np.random.default_rng(seed)
    config = tiny_config()
    height, width = config.image_size
    clips, frames, audio = [], [], []
    row = 0
    for k in range(n_clips):
        envelope = rng.uniform(0.05, 1.0, size=n_frames)
        tone = np.sin(2 * np.pi * rng.uniform(150, 400) * np.arange(n_frames * SAMPLES_PER_FRAME) / 16000)
        sound = np.repeat(envelope, SAMPLES_PER_FRAME) * tone * 8000
        audio.append(sound.astype(np.int16))
        picture = np.full((n_frames, 1, height, width), 160, np.uint8)
        for i, level in enumerate(envelope):
            opening = int(2 + level * (height // 2))
            picture[i, 0, height // 4 : height // 4 + opening, width // 4 : 3 * width // 4] = 40
        frames.append(picture)
        corpus = corpora[k % len(corpora)]
        clips.append(ClipEntry(f"{corpus}/{k:05d}", corpus, row, n_frames, 0))
        row += n_frames
    descriptors = np.eye(n_clips, dtype=np.float32)  # every clip its own appearance group
    return TrainingSet(clips, np.concatenate(frames), np.concatenate(audio), descriptors, {"skipped": []})


# -- batches -------------------------------------------------------------------------------------------


def test_batch_audio_windows_are_the_clips_own_in_sync_audio():
    data = synthetic_set(n_clips=3, n_frames=30)
    rng = np.random.default_rng(5)
    batch = sample_batch(data, [0, 1, 2], segment=12, rng=rng, augment=False)
    assert batch.video.shape == (3, 1, 12, 64, 128)
    assert batch.audio.shape == (3, 8, 1, 13, 20)
    start = int(np.random.default_rng(5).integers(0, 30 - 12))  # the same first draw: clip 0's start
    frames = data.frames_of(0)[start : start + 12]
    assert np.array_equal(batch.video[0, 0].numpy(), frames[:, 0].astype(np.float32))
    sound = data.audio_of(0)[start * SAMPLES_PER_FRAME : (start + 13) * SAMPLES_PER_FRAME]
    expected = mfcc_windows(mfcc(sound), 8)
    assert np.allclose(batch.audio[0].numpy(), expected)
    # window i of the batch is the MFCC of the whole clip at column 4 * (start + i): same alignment
    whole = mfcc(data.audio_of(0))
    assert np.allclose(batch.audio[0, 3, 0].numpy(), whole[:, 4 * (start + 3) : 4 * (start + 3) + 20], atol=1e-3)


def test_batch_applies_the_model_pixel_scale():
    data = synthetic_set(n_clips=2)
    batch = sample_batch(data, [0, 1], 10, np.random.default_rng(0), augment=False, pixel_scale=1 / 255)
    assert float(batch.video.max()) <= 1.0 and float(batch.video.max()) > 0.5


def test_video_augmentation_keeps_frame_order_and_range():
    data = synthetic_set(n_clips=1, n_frames=12)
    clip = data.frames_of(0)
    out = augment_video(clip, np.random.default_rng(1))
    assert out.shape == clip.shape
    assert out.min() >= 0 and out.max() <= 255
    # the dark band's area still follows the loudness envelope frame by frame
    dark_in = (clip < 100).reshape(len(clip), -1).sum(1)
    dark_out = (out < np.median(out)).reshape(len(out), -1).sum(1)
    assert np.corrcoef(dark_in, dark_out)[0, 1] > 0.9


def test_audio_augmentation_is_seeded_and_bounded():
    sound = (np.sin(np.arange(16000) / 5) * 20000).astype(np.int16)
    a = augment_audio(sound, np.random.default_rng(3))
    b = augment_audio(sound, np.random.default_rng(3))
    c = augment_audio(sound, np.random.default_rng(4))
    assert a.dtype == np.int16 and np.array_equal(a, b) and not np.array_equal(a, c)
    gain_db = 20 * np.log10(np.abs(a.astype(float)).mean() / np.abs(sound.astype(float)).mean())
    assert -9 < gain_db < 9


# -- objective -----------------------------------------------------------------------------------------


def test_candidate_mask():
    mask = candidate_mask(n_clips=3, n_windows=6, max_shift=2)
    assert mask.shape == (18, 18)
    assert torch.equal(mask, mask.T) and bool(mask.diagonal().all())
    assert bool(mask[1, 3]) and not bool(mask[1, 4])  # same clip: within ±2 windows only
    assert bool(mask[1, 6 + 1]) and not bool(mask[1, 6 + 2])  # other clip: same position only


def test_candidate_mask_without_other_clips_has_only_time_shifts():
    mask = candidate_mask(n_clips=2, n_windows=5, max_shift=4, other_clips=False)
    assert not bool(mask[:5, 5:].any()) and bool(mask[:5, :5].all())


def test_loss_rewards_aligned_embeddings_and_penalises_shifted_ones():
    gen = torch.Generator().manual_seed(0)
    video = torch.randn(4, 10, 8, generator=gen)
    aligned, acc_aligned = sync_loss(video, video.clone(), max_shift=5)
    shifted, acc_shifted = sync_loss(video, torch.roll(video, 3, dims=1), max_shift=5)
    assert float(aligned) < float(shifted)
    assert acc_aligned["batch_acc"] == 1.0 and acc_shifted["batch_acc"] < 0.5


def test_padding_negative_penalises_embeddings_near_zero():
    video = 0.01 * torch.randn(2, 6, 8)
    audio = video + 0.001
    with_padding, _ = sync_loss(video, audio, max_shift=3, padding=True)
    without, _ = sync_loss(video, audio, max_shift=3, padding=False)
    assert float(with_padding) > float(without)  # "no audio" is as close as the true audio here


def test_loss_has_gradients_for_both_streams():
    video = torch.randn(3, 6, 8, requires_grad=True)
    audio = torch.randn(3, 6, 8, requires_grad=True)
    loss, _ = sync_loss(video, audio, max_shift=3)
    loss.backward()
    assert torch.isfinite(video.grad).all() and video.grad.abs().sum() > 0 and audio.grad.abs().sum() > 0


def test_whole_segment_video_embeddings_equal_the_windowed_ones():
    torch.manual_seed(0)
    model = SyncNet(tiny_config()).eval()
    clip = torch.rand(2, 1, 9, 64, 128)
    together = embed_video(model, clip)
    with torch.no_grad():
        one_by_one = torch.stack([model.forward_video(clip[:, :, i : i + 5]) for i in range(5)], dim=1)
    assert together.shape == (2, 5, 16)
    assert torch.allclose(together, one_by_one, atol=1e-5)


# -- validation metric ---------------------------------------------------------------------------------


@pytest.mark.parametrize("true_offset", [-4, 0, 3])
def test_offset_curve_follows_the_sign_convention(true_offset):
    # video window i matches audio window i - offset (offset > 0: audio leads)
    n = 30
    dist = np.full((n, n), 5.0)
    for i in range(n):
        if 0 <= i - true_offset < n:
            dist[i, i - true_offset] = 1.0
    offsets, curve = offset_curve(dist, max_offset=8)
    assert offsets[np.argmin(curve)] == true_offset


def test_evaluate_reports_per_corpus_accuracies():
    data = synthetic_set(n_clips=4, corpora=("lrc_ar", "grid_s1"))
    model = SyncNet(tiny_config())
    result = evaluate(model, data, [0, 1, 2, 3])
    assert set(result) == {"lrc_ar", "grid_s1"}
    for stats in result.values():
        assert stats["clips"] == 2 and 0 <= stats["clip_acc"] <= 100 and 0 <= stats["window_acc"] <= 100
    assert model.training  # evaluate restores the mode it found


def test_neutral_padding_keeps_real_distances_and_moves_the_zero_vector():
    from syncnet_fcn.train import clip_distances

    data = synthetic_set(n_clips=4)
    torch.manual_seed(0)
    model = SyncNet(tiny_config()).eval()
    before = clip_distances(model, data.frames_of(0), data.audio_of(0))
    info = neutral_padding_shift(model, data, [0, 1, 2, 3])
    after = clip_distances(model, data.frames_of(0), data.audio_of(0))
    assert np.allclose(before, after, atol=1e-3)  # every real pair keeps its distance
    # the zero padding now sits at the typical mismatch distance (within the spread of the norms)
    assert info["video_norm_after"] == pytest.approx(info["target_mismatch_distance"], rel=0.35)


# -- configuration -------------------------------------------------------------------------------------


def test_learning_rate_warms_up_then_decays():
    config = TrainConfig(lr=1e-3, warmup_fraction=0.1)
    rates = [learning_rate(config, s, 100) for s in range(100)]
    assert rates[0] < rates[9] == pytest.approx(1e-3, rel=0.01)
    assert rates[-1] == pytest.approx(5e-5, rel=0.1) and all(a >= b for a, b in zip(rates[10:], rates[11:]))


@pytest.mark.parametrize(
    "bad",
    [dict(batch_clips=1), dict(epochs=0), dict(segment_frames=5), dict(model="huge"),
     dict(corpus_audio_shift="lrc_ar"), dict(corpus_audio_shift="lrc_ar=late"),
     dict(corpus_audio_shift="voxceleb2=1")],
)
def test_bad_settings_are_user_errors(bad, tmp_path):
    with pytest.raises(InvalidArgumentError):
        config = TrainConfig(**bad)
        model_config_for(config)


def test_corpus_audio_shift_moves_only_that_corpus_sound_at_sample_level():
    from syncnet_fcn.media import shift_audio

    dataset = synthetic_set(n_clips=4, corpora=("lrc_ar", "grid_s1"))
    before = [dataset.audio_of(i).copy() for i in range(4)]
    config = TrainConfig(corpus_audio_shift="lrc_ar=-0.67", corpora=("lrc_ar", "grid_s1"))
    assert config.audio_shifts() == {"lrc_ar": -0.67}
    dataset.audio_shifts = config.audio_shifts()
    for i, clip in enumerate(dataset.clips):
        if clip.corpus == "lrc_ar":
            expected = shift_audio(before[i], -0.67)  # advanced by round(0.67 * 640) = 429 samples
            np.testing.assert_array_equal(dataset.audio_of(i), expected)
            np.testing.assert_array_equal(dataset.audio_of(i)[: -429], before[i][429:])
        else:
            np.testing.assert_array_equal(dataset.audio_of(i), before[i])


def test_width_overrides_reach_the_model_config():
    config = model_config_for(TrainConfig(model="light", video_widths="8,8,8,8,8,16", embedding_dim=32))
    assert config.video_widths == (8, 8, 8, 8, 8, 16) and config.embedding_dim == 32
    assert config.region == SyncNetConfig.light().region


def test_cli_parses_train_options():
    from syncnet_fcn.cli import build_parser

    args = build_parser().parse_args(
        ["train", "--epochs", "3", "--video-widths", "8,8,8,8,8,16", "--no-augment", "--corpora", "grid_s1"]
    )
    assert args.epochs == 3 and args.video_widths == "8,8,8,8,8,16" and args.augment is False
    assert args.corpora == "grid_s1"


def test_cuda_without_a_gpu_is_a_user_error(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    config = TrainConfig(**TINY, device="cuda", run_dir=str(tmp_path / "run"), output=str(tmp_path / "m.pt"))
    with pytest.raises(InvalidArgumentError):
        train(config, dataset=synthetic_set())


def test_missing_initial_weights_are_a_user_error(tmp_path):
    config = TrainConfig(**TINY, init_from=str(tmp_path / "absent.pt"), run_dir=str(tmp_path / "run"),
                         output=str(tmp_path / "m.pt"), progress=False)
    with pytest.raises(InvalidArgumentError, match="init-from"):
        train(config, dataset=synthetic_set())


# -- the run -------------------------------------------------------------------------------------------


def run_config(tmp_path, **changes) -> TrainConfig:
    values = dict(TINY, epochs=2, batch_clips=4, segment_frames=12, lr=3e-3, val_fraction=0.25, threads=1,
                  run_dir=str(tmp_path / "run"), output=str(tmp_path / "ckpt.pt"), progress=False, seed=7)
    values.update(changes)
    return TrainConfig(**values)


@pytest.mark.slow
def test_training_writes_a_loadable_checkpoint_and_learns(tmp_path):
    data = synthetic_set(n_clips=12, n_frames=30)
    path = train(run_config(tmp_path, epochs=6, fp16=True), dataset=data)
    payload = torch.load(path, weights_only=True)
    meta = payload["meta"]
    assert len(meta["history"]) == 6 and meta["best_epoch"] is not None
    losses = [r["loss"] for r in meta["history"]]
    assert losses[-1] < losses[0]  # the synthetic task is learnable
    model = load_model(path)
    assert model.config.video_widths == (4, 8, 8, 8, 8, 16)
    if meta["precision"] == "fp16":
        assert all(v.dtype == torch.float16 for v in payload["state_dict"].values() if v.is_floating_point())
    log = (tmp_path / "run" / "train.log").read_text()
    assert "epoch 1:" in log and "epoch 6:" in log and "val" in log


def test_fine_tuning_starts_from_the_given_weights(tmp_path):
    data = synthetic_set(n_clips=8)
    first = train(run_config(tmp_path / "a", epochs=1, fp16=False), dataset=data)
    config = run_config(tmp_path / "b", epochs=1, fp16=False, init_from=str(first), lr=0.0,
                        other_clip_negatives=False)
    second = train(config, dataset=data)
    a = torch.load(first, weights_only=True)["state_dict"]
    b = torch.load(second, weights_only=True)["state_dict"]
    # lr 0: the weights cannot move; BatchNorm running statistics do, and the export's padding
    # shift moves the output biases of both heads
    moved = ("running", "num_batches", "netfclip.3.bias", "netfcaud.3.bias")
    for key, value in a.items():
        if not any(part in key for part in moved):
            assert torch.equal(value, b[key]), key


def test_fine_tuning_warns_when_validation_holds_the_starting_weights_training_clips(tmp_path):
    data = synthetic_set(n_clips=12)
    first = train(run_config(tmp_path / "a", epochs=1, fp16=False), dataset=data)
    split = json.loads((tmp_path / "a" / "run" / "split.json").read_text())
    assert torch.load(first, weights_only=True)["meta"]["train_clip_names"] == split["train"]
    same = train(run_config(tmp_path / "b", epochs=1, fp16=False, init_from=str(first)), dataset=data)
    assert "warning" not in (tmp_path / "b" / "run" / "train.log").read_text()
    # another split seed holds out other clips, some of which trained the starting weights; a run's
    # best.pt finds them through the split.json beside it
    for k, start in enumerate((str(first), str(tmp_path / "b" / "run" / "best.pt"))):
        run = tmp_path / f"c{k}"
        train(run_config(run, epochs=1, fp16=False, init_from=start, split_seed=3), dataset=data)
        new_val = json.loads((run / "run" / "split.json").read_text())["val"]
        leaked = len(set(new_val) & set(split["train"]))
        assert leaked > 0
        assert f"warning: {leaked} of {len(new_val)} validation clips" in (run / "run" / "train.log").read_text()
    assert same.exists()


@pytest.mark.slow
def test_resume_continues_where_it_stopped_and_matches_a_straight_run(tmp_path):
    data = synthetic_set(n_clips=8)
    straight = train(run_config(tmp_path / "a", epochs=2, fp16=False), dataset=data)
    train(run_config(tmp_path / "b", epochs=1, fp16=False), dataset=data)
    resumed = train(run_config(tmp_path / "b", epochs=2, fp16=False), dataset=data)
    a = torch.load(straight, weights_only=True)
    b = torch.load(resumed, weights_only=True)
    assert [r["epoch"] for r in b["meta"]["history"]] == [1, 2]
    assert "resumed" in (tmp_path / "b" / "run" / "train.log").read_text()
    # same seed, same data, same thread count: identical histories and weights
    assert [r["loss"] for r in a["meta"]["history"]] == [r["loss"] for r in b["meta"]["history"]]
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key


def test_time_budget_stops_early_and_still_exports(tmp_path):
    data = synthetic_set(n_clips=8)
    path = train(run_config(tmp_path, epochs=50, time_budget_min=1e-6), dataset=data)
    meta = torch.load(path, weights_only=True)["meta"]
    assert len(meta["history"]) == 1 and meta["history"][0]["steps"] == 1
