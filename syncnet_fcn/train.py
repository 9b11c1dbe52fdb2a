"""Training a SyncNet-family model on talking-face footage: the backend of ``syncnet-fcn train``.

Objective (a multi-way contrastive loss in the spirit of "Perfect match", Chung et al. 2019): every
5-frame video window of a training segment must pick its own audio window, by smallest L2 distance,
among candidates — the same clip's audio shifted by up to ``max_shift`` frames either way (the hard
negatives, exactly the alternatives an offset search weighs) and the audio at the same position of the
other clips in the batch (a face with somebody else's voice; ``--no-other-clip-negatives`` leaves only
time shifts), and the zero embedding that the offset search uses as padding beyond a track's ends.
The logits are the negative distances, so the quantity trained is the one the engines rank at
inference. The same holds in the other direction (every audio window picks its video window) and both
cross-entropies are averaged. Before export, one vector is added to both heads' output bias so that
the zero padding sits at a typical mismatch distance (:func:`neutral_padding_shift`).

Whole segments go through the video stream at once: with no temporal padding it yields one embedding
per 5-frame window, identical to running the windows one by one, for about a fifth of the cost.

Runs are resumable (``<run dir>/last.pt`` after every epoch), deterministic for a given seed, thread
count and device, and log loss and validation sync accuracy per epoch to ``<run dir>/train.log``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import SAMPLES_PER_FRAME
from .audio import mfcc, mfcc_windows
from .datasets import (
    CORPORA,
    TrainingSet,
    build_training_set,
    default_cache_dir,
    parse_audio_shifts,
    split_by_speaker,
)
from .errors import InvalidArgumentError

WINDOW_FRAMES = 5
#: offset search range of the validation metric, as the engines' default
VAL_MAX_OFFSET = 15


@dataclass
class TrainConfig:
    """Everything that decides a training run; stored in its checkpoints."""

    train_root: str = "../shared/train"
    output: str = "checkpoints/syncnet_light.pt"
    run_dir: str | None = None  # state, log and best weights; default: beside the cache
    cache_dir: str | None = None
    model: str = "light"  # "light" or "official": a SyncNetConfig member
    # optional overrides of the member's channel widths (six per stream) and embedding size
    video_widths: tuple[int, ...] | None = None
    audio_widths: tuple[int, ...] | None = None
    embedding_dim: int | None = None
    region: str | None = None  # optional override of the member's face region ("face", "lower_face", "mouth")
    corpora: tuple[str, ...] = CORPORA
    limit: int | None = None  # first N clips per corpus (trials, tests)
    epochs: int = 12
    batch_clips: int = 16
    segment_frames: int = 24  # video frames per training segment → segment_frames - 4 windows
    max_shift: int = 15  # same-clip negatives up to this many frames away
    other_clip_negatives: bool = True  # also the other clips' audio at the same position
    # "corpus=frames,…": delay (negative: advance) a corpus's sound by its measured own offset
    corpus_audio_shift: str | None = None
    padding_negative: bool = True  # the zero embedding (the search's padding) as one more negative
    init_from: str | None = None  # start from these weights (a checkpoint or a run's best.pt/last.pt)
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup_fraction: float = 0.03
    val_fraction: float = 0.1
    seed: int = 0  # segment sampling, augmentation, initial weights
    split_seed: int = 0  # which speaker groups are held out (keep it when fine-tuning in stages)
    device: str = "cpu"
    threads: int = 2
    time_budget_min: float | None = None  # stop (and export) after this much wall-clock training
    augment: bool = True
    fp16: bool = True  # store the shipped weights in half precision when validation accuracy holds
    resume: bool = True
    progress: bool = True

    def __post_init__(self):
        self.corpora = tuple(self.corpora)
        for name in ("video_widths", "audio_widths"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = [int(v) for v in value.split(",") if v.strip()]
            setattr(self, name, tuple(int(v) for v in value) if value else None)
        if self.segment_frames < WINDOW_FRAMES + 1:
            raise InvalidArgumentError(f"segment_frames must be at least {WINDOW_FRAMES + 1}")
        if self.batch_clips < 2:
            raise InvalidArgumentError("batch_clips must be at least 2 (other clips are the negatives)")
        if self.epochs < 1:
            raise InvalidArgumentError("epochs must be at least 1")
        self.audio_shifts()  # refuse a malformed value before any work

    def audio_shifts(self) -> dict[str, float]:
        """``corpus_audio_shift`` as ``{corpus: frames}``."""
        shifts = parse_audio_shifts(self.corpus_audio_shift)
        for corpus in shifts:
            if corpus not in self.corpora:
                raise InvalidArgumentError(f"--corpus-audio-shift: {corpus!r} is not a training corpus")
        return shifts


def model_config_for(config: TrainConfig):
    """The :class:`SyncNetConfig` member ``config.model``, with ``config``'s width overrides applied."""
    import dataclasses

    from .model import SyncNetConfig

    members = {"light": SyncNetConfig.light, "official": SyncNetConfig.official}
    if config.model not in members:
        raise InvalidArgumentError(f"unknown model {config.model!r}: choose {' or '.join(members)}")
    overrides = {k: getattr(config, k) for k in ("video_widths", "audio_widths", "embedding_dim", "region")
                 if getattr(config, k) is not None}
    try:
        return dataclasses.replace(members[config.model](), **overrides)
    except ValueError as exc:
        raise InvalidArgumentError(f"invalid model override: {exc}") from None


# -- batches -------------------------------------------------------------------------------------------


@dataclass
class Batch:
    video: torch.Tensor  # (B, C, L, H, W) float on the model's input scale
    audio: torch.Tensor  # (B, L - 4, 1, 13, 20) MFCC windows, window i ↔ video frames i … i+4
    clips: list[int]


def sample_batch(dataset: TrainingSet, clip_ids: list[int], segment: int, rng: np.random.Generator,
                 augment: bool, pixel_scale: float = 1.0) -> Batch:
    """One random in-sync segment of ``segment`` frames per clip, augmented, as model input.

    Audio runs one frame past the video segment because ``4T`` MFCC columns need ``T + 1`` frames of
    sound (the last 25 ms analysis window overhangs) — the same data the engines see mid-track.
    """
    videos, audios = [], []
    n_windows = segment - WINDOW_FRAMES + 1
    for index in clip_ids:
        frames = dataset.frames_of(index)
        sound = dataset.audio_of(index)
        start = int(rng.integers(0, len(frames) - segment))  # clips are filtered to len > segment
        clip = frames[start : start + segment]
        span = sound[start * SAMPLES_PER_FRAME : (start + segment + 1) * SAMPLES_PER_FRAME]
        if augment:
            clip = augment_video(clip, rng)
            span = augment_audio(span, rng)
        videos.append(clip)
        audios.append(mfcc_windows(mfcc(span), n_windows))
    video = torch.from_numpy(np.stack(videos).astype(np.float32) * np.float32(pixel_scale)).permute(0, 2, 1, 3, 4)
    return Batch(video.contiguous(), torch.from_numpy(np.stack(audios)), list(clip_ids))


def augment_video(clip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Same random flip, small shift/zoom, contrast, brightness (and colour balance) on every frame.

    ``clip`` is ``(L, C, H, W)`` uint8. A shift of a few pixels stands for the jitter of a real face
    track; lighting changes stand for other cameras. Nothing here moves content in time.
    """
    import cv2

    n, channels, height, width = clip.shape
    out = clip.transpose(0, 2, 3, 1).astype(np.float32)  # (L, H, W, C)
    if rng.random() < 0.5:
        out = out[:, :, ::-1]
    scale = rng.uniform(0.94, 1.06)
    shift = rng.uniform(-0.04, 0.04, size=2) * (width, height)
    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), rng.uniform(-4, 4), scale)
    matrix[:, 2] += shift
    warped = np.empty_like(out)
    for i in range(n):
        frame = cv2.warpAffine(np.ascontiguousarray(out[i]), matrix, (width, height), flags=cv2.INTER_LINEAR,
                               borderMode=cv2.BORDER_REFLECT)
        warped[i] = frame.reshape(height, width, channels)
    gain = rng.uniform(0.7, 1.3) * (rng.uniform(0.9, 1.1, size=channels) if channels > 1 else 1.0)
    mean = warped.mean()
    warped = (warped - mean) * gain + mean + rng.uniform(-25, 25)
    return np.clip(warped, 0, 255).transpose(0, 3, 1, 2)


def augment_audio(samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random level (±8 dB) and, half the time, white noise at 5–35 dB SNR; int16 out."""
    sound = samples.astype(np.float32) * 10 ** (rng.uniform(-8, 8) / 20)
    if rng.random() < 0.5:
        power = float(np.mean(sound**2)) + 1.0
        snr_db = rng.uniform(5, 35)
        sound = sound + rng.standard_normal(len(sound)).astype(np.float32) * math.sqrt(power / 10 ** (snr_db / 10))
    return np.clip(np.rint(sound), -32768, 32767).astype(np.int16)


# -- model pieces --------------------------------------------------------------------------------------


def embed_video(model, video: torch.Tensor) -> torch.Tensor:
    """``(B, C, L, H, W)`` → ``(B, L - 4, D)``: one embedding per 5-frame window, in one pass."""
    features = model.netcnnlip(video)  # (B, F, L - 4, 1, 1)
    batch, width, steps = features.shape[:3]
    if features[0, 0, 0].numel() != 1:
        raise ValueError(f"video stream must end at 1×1 spatially, got {tuple(features.shape[3:])}")
    flat = features.reshape(batch, width, steps).transpose(1, 2).reshape(batch * steps, width)
    return model.netfclip(flat).reshape(batch, steps, -1)


def embed_audio(model, windows: torch.Tensor) -> torch.Tensor:
    """``(B, W, 1, 13, 20)`` → ``(B, W, D)``."""
    batch, steps = windows.shape[:2]
    return model.forward_audio(windows.reshape(batch * steps, *windows.shape[2:])).reshape(batch, steps, -1)


def candidate_mask(n_clips: int, n_windows: int, max_shift: int, device=None, other_clips: bool = True) -> torch.Tensor:
    """``mask[v, a]``: may video window ``v`` be compared with audio window ``a`` (flattened B×W)?

    Same clip within ``max_shift`` windows, or (``other_clips``) another clip at the same position.
    Symmetric, and the diagonal (the in-sync pair) is always a candidate. Without other clips every
    negative is a time shift: nothing can be won by matching voice to face instead of timing.
    """
    clip = torch.arange(n_clips, device=device).repeat_interleave(n_windows)
    pos = torch.arange(n_windows, device=device).repeat(n_clips)
    same_clip = clip[:, None] == clip[None, :]
    near = (pos[:, None] - pos[None, :]).abs() <= max_shift
    same_pos = pos[:, None] == pos[None, :]
    mask = same_clip & near
    return mask | (~same_clip & same_pos) if other_clips else mask


def sync_loss(video_emb: torch.Tensor, audio_emb: torch.Tensor, max_shift: int,
              other_clips: bool = True, padding: bool = True) -> tuple[torch.Tensor, dict]:
    """Two-way cross-entropy over candidate pairs with logits ``-distance``; plus batch accuracy.

    With ``padding``, each row also competes with the zero embedding (the padding the offset search
    uses beyond a track's ends): the in-sync pair must be closer than "nothing".
    """
    n_clips, n_windows, _ = video_emb.shape
    v = video_emb.reshape(n_clips * n_windows, -1)
    a = audio_emb.reshape(n_clips * n_windows, -1)
    dist = torch.cdist(v, a)
    mask = candidate_mask(n_clips, n_windows, max_shift, device=dist.device, other_clips=other_clips)
    logits = (-dist).masked_fill(~mask, float("-inf"))
    target = torch.arange(len(v), device=dist.device)
    # The offset search pads beyond the track's ends with zero embeddings (as the original does), so
    # "no audio at all" is a candidate at inference: the zero vector is one more negative here.
    to_video_zero = -a.norm(dim=1)[None, :]  # audio window vs zero video embedding
    to_audio_zero = -v.norm(dim=1)[:, None]  # video window vs zero audio embedding
    video_rows = torch.cat([logits, to_audio_zero], dim=1) if padding else logits
    audio_rows = torch.cat([logits.T, to_video_zero.T], dim=1) if padding else logits.T
    loss = 0.5 * (F.cross_entropy(video_rows, target) + F.cross_entropy(audio_rows, target))
    with torch.no_grad():
        picked = logits.argmax(dim=1)
        same_clip = picked // n_windows == target // n_windows
        close = same_clip & ((picked - target).abs() <= 1)
        positive = float(dist.diagonal().mean())
    return loss, {"batch_acc": float(close.float().mean()), "mean_pos_dist": positive}


# -- validation ----------------------------------------------------------------------------------------


@torch.no_grad()
def clip_distances(model, frames: np.ndarray, sound: np.ndarray, device: str = "cpu") -> np.ndarray:
    """``d[i, j]``: distance of video window ``i`` to audio window ``j`` over a whole cached clip."""
    n_windows = len(frames) - WINDOW_FRAMES  # the original's count: 4T - 1 MFCC columns
    pixels = frames.astype(np.float32) * np.float32(model.config.pixel_scale)
    video = torch.from_numpy(pixels).permute(1, 0, 2, 3)[None].to(device)
    v = embed_video(model, video)[0, :n_windows]
    windows = torch.from_numpy(mfcc_windows(mfcc(sound), n_windows)).to(device)
    a = model.forward_audio(windows)
    return torch.cdist(v[None], a[None])[0].float().cpu().numpy()


def offset_curve(dist: np.ndarray, max_offset: int, min_windows: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean distance per offset ``o`` (video window i against audio window i − o), where defined.

    An offset counts only where at least ``min_windows`` windows overlap (default: half the clip, at
    least 5): means over a handful of edge windows are too noisy to compete with the rest.
    """
    n = len(dist)
    if min_windows is None:
        min_windows = max(5, n // 2)
    offsets = np.arange(-max_offset, max_offset + 1)
    curve = np.full(len(offsets), np.inf)
    for k, o in enumerate(offsets):
        i = np.arange(max(0, o), min(n, n + o))
        if len(i) >= min_windows:
            curve[k] = dist[i, i - o].mean()
    return offsets, curve


def evaluate(model, dataset: TrainingSet, indices: list[int], max_offset: int = 15, device: str = "cpu") -> dict:
    """Validation sync accuracy per corpus: window level (5 frames) and clip level (whole clip).

    A window is right when its nearest audio window among ±``max_offset`` lies within ±1 frame of its
    own; a clip is right when the offset with the smallest mean distance is within ±1 of 0.
    """
    was_training = model.training
    model.eval()
    per_corpus: dict[str, dict] = {}
    for index in indices:
        corpus = dataset.clips[index].corpus
        dist = clip_distances(model, dataset.frames_of(index), dataset.audio_of(index), device)
        n = len(dist)
        rel = np.arange(n)[None, :] - np.arange(n)[:, None]
        masked = np.where(np.abs(rel) <= max_offset, dist, np.inf)
        window_right = np.abs(masked.argmin(axis=1) - np.arange(n)) <= 1
        offsets, curve = offset_curve(dist, max_offset)
        best = offsets[int(np.argmin(curve))]
        finite = curve[np.isfinite(curve)]
        stats = per_corpus.setdefault(corpus, {"clips": 0, "clip_right": 0, "windows": 0, "window_right": 0,
                                               "conf": []})
        stats["clips"] += 1
        stats["clip_right"] += int(abs(best) <= 1)
        stats["windows"] += n
        stats["window_right"] += int(window_right.sum())
        stats["conf"].append(float(np.median(finite) - finite.min()))
    model.train(was_training)
    out = {}
    for corpus, s in per_corpus.items():
        out[corpus] = {
            "clips": s["clips"],
            "clip_acc": round(100 * s["clip_right"] / s["clips"], 2),
            "window_acc": round(100 * s["window_right"] / max(1, s["windows"]), 2),
            "median_conf": round(float(np.median(s["conf"])), 3),
        }
    return out


@torch.no_grad()
def neutral_padding_shift(model, dataset: TrainingSet, indices: list[int], device: str = "cpu",
                          min_shift: int = 3) -> dict:
    """Move both embedding spaces by one vector ``c`` so that "no audio" reads like a mismatch.

    The offset search pads beyond a track's ends with zero audio embeddings (as the original does), so
    a padded window contributes ``‖v‖``. Adding the same ``c`` to every video and audio embedding
    leaves every real distance unchanged but sets ``‖v + c‖``; ``c`` is chosen so that it equals, on
    average, the distance of a window to audio ``min_shift`` or more frames away. Too small and every
    track reads 0 (padding is penalised), too large and the search drifts to ±max_offset. The shift
    goes into the output bias of both heads.
    """
    was_training = model.training
    model.eval()
    videos, mismatched = [], []
    for index in indices:
        frames = dataset.frames_of(index)
        if len(frames) <= WINDOW_FRAMES + min_shift:
            continue
        dist = clip_distances(model, frames, dataset.audio_of(index), device)
        n = len(dist)
        pixels = frames.astype(np.float32) * np.float32(model.config.pixel_scale)
        video = torch.from_numpy(pixels).permute(1, 0, 2, 3)[None].to(device)
        videos.append(embed_video(model, video)[0, :n].float().cpu().numpy())
        far = np.abs(np.arange(n)[:, None] - np.arange(n)[None, :]) >= min_shift
        mismatched.append(dist[far])
    model.train(was_training)
    v = np.concatenate(videos).astype(np.float64)
    target = float(np.median(np.concatenate(mismatched)))
    mean = v.mean(axis=0)
    centred = v - mean
    spread = float(np.mean(np.sum(centred**2, axis=1)))
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    quiet = components[-1]  # the direction the video embeddings vary least along
    extra = math.sqrt(max(0.0, target**2 - spread))
    shift = -mean + extra * quiet
    norms_before = np.linalg.norm(v, axis=1)
    norms_after = np.linalg.norm(v + shift, axis=1)
    for head in (model.netfclip, model.netfcaud):
        head[3].bias.add_(torch.as_tensor(shift, dtype=head[3].bias.dtype, device=head[3].bias.device))
    return {"target_mismatch_distance": round(target, 4), "video_norm_before": round(float(np.median(norms_before)), 4),
            "video_norm_after": round(float(np.median(norms_after)), 4), "windows": int(len(v))}


def selection_score(val: dict) -> float:
    """One number to pick the best epoch: mean window accuracy over the validation corpora."""
    if not val:
        return 0.0
    return float(np.mean([v["window_acc"] for v in val.values()]))


# -- the run -------------------------------------------------------------------------------------------


def train(config: TrainConfig, dataset: TrainingSet | None = None) -> Path:
    """Train, validate per epoch, resume if asked, and write the shipped checkpoint; its path.

    ``dataset`` replaces the cache built from ``config.train_root`` (tests, notebooks); it must hold
    frames in the layout of the configured model.
    """
    from tqdm import tqdm

    from .model import SyncNet

    torch.set_num_threads(max(1, int(config.threads)))
    device = torch.device(config.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidArgumentError("--device cuda asked for, but no CUDA device is available here")
    model_config = model_config_for(config)
    if config.init_from and not Path(config.init_from).is_file():
        raise InvalidArgumentError(f"--init-from: no such file {config.init_from}")
    run_dir = Path(config.run_dir) if config.run_dir else default_cache_dir().parent / "runs" / Path(config.output).stem
    run_dir.mkdir(parents=True, exist_ok=True)
    log = _Log(run_dir / "train.log")

    if dataset is None:
        dataset = build_training_set(config.train_root, model_config, config.cache_dir, config.corpora,
                                     limit=config.limit, progress=config.progress)
    dataset.audio_shifts = config.audio_shifts()
    split = split_by_speaker(dataset, config.val_fraction, seed=config.split_seed)
    # a segment needs one frame of audio beyond its video (see sample_batch)
    train_ids = [i for i in split.train if dataset.clips[i].n_frames > config.segment_frames]
    val_ids = [i for i in split.val if dataset.clips[i].n_frames >= 2 * WINDOW_FRAMES + 1]
    if len(train_ids) < config.batch_clips:
        raise InvalidArgumentError(f"only {len(train_ids)} usable training clips for batches of {config.batch_clips}")
    train_names = sorted(dataset.clips[i].name for i in train_ids)
    (run_dir / SPLIT_FILE).write_text(json.dumps({
        "train": train_names, "val": sorted(dataset.clips[i].name for i in val_ids)}) + "\n")
    steps_per_epoch = len(train_ids) // config.batch_clips
    total_steps = steps_per_epoch * config.epochs

    torch.manual_seed(config.seed)
    model = SyncNet(model_config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    state_path = run_dir / "last.pt"
    start_epoch, history, best = 0, [], {"score": -1.0, "epoch": None, "val": None}
    if config.resume and state_path.exists():
        state = torch.load(state_path, map_location=device, weights_only=False)
        if state["model_config"] != _config_dict(model_config):
            raise InvalidArgumentError(f"{state_path} was trained with another model config; use a new --run-dir")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch, history, best = state["epoch"] + 1, state["history"], state["best"]
        log.write(f"resumed from {state_path} after epoch {state['epoch'] + 1}")
    else:
        if config.init_from:
            weights, seen = _initial_weights(config.init_from, device)
            model.load_state_dict(weights)
            leaked = len({dataset.clips[i].name for i in val_ids} & seen) if seen is not None else 0
            if leaked:
                # a rebuilt cache (another region, more faces found) regroups the speakers: the new
                # held-out set can hold clips the starting weights learned from
                log.write(f"warning: {leaked} of {len(val_ids)} validation clips were training clips of "
                          f"{config.init_from}; validation is not held out for them")
            log.write(f"initialised from {config.init_from}")
        log.write(f"run {run_dir}: {json.dumps(asdict(config))}")
        log.write(f"data {json.dumps(dataset.summary())}; skipped {len(dataset.meta['skipped'])} clips")
        log.write(f"split: {len(train_ids)} train clips, {len(val_ids)} val clips; {json.dumps(split.notes)}")
        log.write(f"model {config.model}: {sum(p.numel() for p in model.parameters()):,} parameters")

    started = time.monotonic()
    out_of_time = False
    for epoch in range(start_epoch, config.epochs):
        rng = np.random.default_rng([config.seed, epoch])
        torch.manual_seed(config.seed * 1000 + epoch)
        order = rng.permutation(train_ids)
        model.train()
        losses, accs = [], []
        epoch_start = time.monotonic()
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{config.epochs}", disable=not config.progress)
        for step in bar:
            global_step = epoch * steps_per_epoch + step
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(config, global_step, total_steps)
            ids = order[step * config.batch_clips : (step + 1) * config.batch_clips].tolist()
            batch = sample_batch(dataset, ids, config.segment_frames, rng, config.augment,
                                 model_config.pixel_scale)
            video_emb = embed_video(model, batch.video.to(device))
            audio_emb = embed_audio(model, batch.audio.to(device))
            loss, stats = sync_loss(video_emb, audio_emb, config.max_shift, config.other_clip_negatives,
                                    config.padding_negative)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            losses.append(float(loss.detach()))
            accs.append(stats["batch_acc"])
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}", acc=f"{np.mean(accs[-20:]):.2f}")
            if config.time_budget_min is not None and time.monotonic() - started > 60 * config.time_budget_min:
                out_of_time = True
                break
        bar.close()
        val = evaluate(model, dataset, val_ids, VAL_MAX_OFFSET, device)
        record = {
            "epoch": epoch + 1,
            "steps": len(losses),
            "loss": round(float(np.mean(losses)), 4),
            "train_batch_acc": round(100 * float(np.mean(accs)), 2),
            "val": val,
            "lr": learning_rate(config, epoch * steps_per_epoch + len(losses) - 1, total_steps),
            "seconds": round(time.monotonic() - epoch_start, 1),
        }
        history.append(record)
        log.write(f"epoch {epoch + 1}: {json.dumps(record)}")
        score = selection_score(val)
        if score > best["score"]:
            best = {"score": score, "epoch": epoch + 1, "val": val}
            torch.save({"model": model.state_dict()}, run_dir / "best.pt")
        torch.save(
            {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
             "history": history, "best": best, "model_config": _config_dict(model_config),
             "train_config": asdict(config), "split": {"train": train_ids, "val": val_ids, "notes": split.notes}},
            state_path,
        )
        if out_of_time:
            log.write(f"time budget of {config.time_budget_min} min reached in epoch {epoch + 1}; stopping")
            break

    model.load_state_dict(torch.load(run_dir / "best.pt", map_location=device)["model"])
    # fitted on (a sample of) the training clips: the held-out ones stay untouched for validation
    padding = neutral_padding_shift(model, dataset, train_ids[::8], device)
    log.write(f"padding made neutral: {json.dumps(padding)}")
    meta = {
        "model": config.model,
        "trained_on": dataset.summary(),
        "best_epoch": best["epoch"],
        "val": best["val"],
        "split_notes": split.notes,
        "neutral_padding": {**padding, "fitted_on": f"{len(train_ids[::8])} training clips"},
        "val_clips": len(val_ids),
        "train_clips": len(train_ids),
        "train_clip_names": train_names,
        "train_config": asdict(config),
        "history": history,
        "training_minutes": round(sum(r["seconds"] for r in history) / 60, 1),
        "torch": str(torch.__version__),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    half = False
    if config.fp16:
        half_val = evaluate(_half_rounded(model), dataset, val_ids, VAL_MAX_OFFSET, device)
        half = selection_score(half_val) >= selection_score(best["val"]) - 0.5
        meta["fp16_val"] = half_val
        log.write(f"fp16 check: {json.dumps(half_val)} → {'half' if half else 'full'} precision")
    out = export_checkpoint(model, model_config, config.output, meta, half=half)
    log.write(f"wrote {out} (sha256 {file_sha256(out)})")
    return out


#: the run directory's record of which clips trained and which validated its weights
SPLIT_FILE = "split.json"


def _initial_weights(path: str, device) -> tuple[dict, set[str] | None]:
    """``(state dict, names of the clips that trained it or None)`` from a shipped checkpoint (names
    in its meta), a run's ``best.pt``/``last.pt`` (names in the ``split.json`` beside it), or a bare
    state dict."""
    if not Path(path).is_file():
        raise InvalidArgumentError(f"--init-from: no such file {path}")
    payload = torch.load(path, map_location=device, weights_only=False)
    names = payload.get("meta", {}).get("train_clip_names") if isinstance(payload, dict) else None
    if names is None and (Path(path).parent / SPLIT_FILE).exists():
        names = json.loads((Path(path).parent / SPLIT_FILE).read_text())["train"]
    for key in ("model", "state_dict"):
        if isinstance(payload, dict) and isinstance(payload.get(key), dict):
            payload = payload[key]
            break
    state = {k: v.float() if v.is_floating_point() else v for k, v in payload.items()}
    return state, (set(names) if names is not None else None)


def learning_rate(config: TrainConfig, step: int, total: int) -> float:
    """Linear warm-up, then cosine decay to 5 % of the peak (a pure function of the step: resumable)."""
    warm = max(1, int(config.warmup_fraction * total))
    if step < warm:
        return config.lr * (step + 1) / warm
    progress = min(1.0, (step - warm) / max(1, total - warm))
    return config.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def export_checkpoint(model, model_config, path: str | Path, meta: dict, half: bool = True) -> Path:
    """Write ``{"config", "state_dict", "meta"}`` as ``load_model`` reads it; float tensors in fp16 if ``half``."""
    state = {}
    for key, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu()
        state[key] = tensor.half() if half and tensor.is_floating_point() else tensor.clone()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"config": _config_dict(model_config), "state_dict": state,
                "meta": {**meta, "precision": "fp16" if half else "fp32"}}, tmp)
    tmp.replace(path)
    return path


def file_sha256(path: str | Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _half_rounded(model):
    """A copy of ``model`` whose weights went through fp16 and back (what the shipped file holds)."""
    import copy

    twin = copy.deepcopy(model)
    with torch.no_grad():
        for tensor in list(twin.parameters()) + list(twin.buffers()):
            if tensor.is_floating_point():
                tensor.copy_(tensor.half().float())
    return twin


def _config_dict(model_config) -> dict:
    if hasattr(model_config, "to_dict"):
        return model_config.to_dict()
    return asdict(model_config)


class _Log:
    """Append-only text log, one timestamped line per event, echoed to stderr."""

    def __init__(self, path: Path):
        self.path = path

    def write(self, line: str) -> None:
        import sys

        stamped = f"{time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime())} {line}"
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(stamped + "\n")
        print(stamped, file=sys.stderr, flush=True)


# -- command line --------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``syncnet-fcn train`` options: one per :class:`TrainConfig` field."""
    defaults = TrainConfig()
    helps = {
        "train_root": "folder holding the training corpora (lrc_ar/, grid_s1/)",
        "output": "where to write the shipped checkpoint",
        "run_dir": "run state, log and best weights (default: beside the cache)",
        "cache_dir": "cache of prepared clips (default: $SYNCNET_FCN_CACHE/train or ~/.cache/syncnet_fcn/train)",
        "model": "model member: light (CPU-sized) or official (needs a GPU in practice)",
        "corpora": "comma-separated corpora to train on",
        "limit": "use only the first N clips of each corpus (trials)",
        "time_budget_min": "stop after this many minutes of training and export the best epoch",
        "init_from": "start from these weights: a checkpoint, or a run's best.pt / last.pt",
        "other_clip_negatives": "also use other clips' audio as negatives (else only time shifts)",
        "padding_negative": "also use the zero embedding (the offset search's padding) as a negative",
        "device": "torch device, e.g. cpu or cuda",
        "region": "part of the face crop the model sees: face, lower_face or mouth (default: the member's)",
        "corpus_audio_shift": "align corpora recorded off sync: corpus=frames,… delays (negative: advances) "
                              "that corpus's sound (measure with benchmarks/corpus_lag.py)",
    }
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        default = getattr(defaults, f.name)
        if isinstance(default, bool):
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=default,
                                help=helps.get(f.name))
        elif f.name == "corpora":
            parser.add_argument(flag, dest=f.name, default=",".join(default), help=helps.get(f.name))
        elif f.name in ("video_widths", "audio_widths"):
            parser.add_argument(flag, dest=f.name, default=None, help="six comma-separated channel counts")
        else:
            kind = {"int": int, "float": float}.get(type(default).__name__, str)
            if f.name in ("limit", "embedding_dim"):
                kind = int
            if f.name in ("time_budget_min",):
                kind = float
            parser.add_argument(flag, dest=f.name, type=kind, default=default, help=helps.get(f.name))


def run_from_args(args: argparse.Namespace) -> Path:
    values = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    if isinstance(values.get("corpora"), str):
        values["corpora"] = tuple(c for c in values["corpora"].split(",") if c)
    path = train(TrainConfig(**values))
    print(path)
    return path
