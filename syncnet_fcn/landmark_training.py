"""Training the landmark engine's members on the whole training footage (``../shared/train``).

The recipe, on top of :func:`syncnet_fcn.landmark.training.fit`'s:

* more speakers: ``harvest2`` beside ``lrc_ar``, evaluation speakers left out, every source page
  aligned by its measured lip/sound lag and clips that do not read in sync dropped
  (:mod:`syncnet_fcn.training_corpus`), a held-out set of speakers for validation;
* a multi-way objective over every candidate offset the engine searches (±15 frames, PerfectMatch
  style): the true alignment is one class against all shifts whose sound lies inside the clip, so a
  word clip of 31 frames still contributes its in-clip shifts instead of being ranked over ±8 only;
* augmentation: each track is also seen with its sound under noise at a random signal-to-noise ratio
  (features computed once per copy), and the standardised lip features get a little jitter per batch.

The members keep the shipped network shape (:func:`syncnet_fcn.landmark.models.make_net`), so the
engine loads them unchanged; the CCA members are refitted on the same frames.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .landmark.features import VISUAL_LIPS, VISUAL_LIPS_APPEARANCE, TrackFeatures, stack_context, visual_features
from .landmark.models import CCA_AUDIO_CONTEXT, LandmarkModel, LandmarkModels, fit_cca, make_net, one_torch_thread
from .landmark.reading import WINDOW_FRAMES
from .landmark.training import cached_tracks
from .media import shift_audio
from .training_corpus import TrainingClip

#: Offsets the objective ranks the truth against (the engine's search range).
MAX_SHIFT = 15
#: A shift needs at least this many frames of the clip with sound at that shift to be a candidate.
MIN_OVERLAP = WINDOW_FRAMES
#: Signal-to-noise ratios (dB) of the noisy copy of each track's sound.
NOISE_SNR_DB = (5.0, 20.0)
#: Standard deviation of the jitter added to standardised lip features during training.
VISUAL_JITTER = 0.1


@dataclass
class Recipe:
    steps: int = 5000
    batch: int = 32
    clip_frames: int = 41
    lr: float = 2e-3
    max_shift: int = MAX_SHIFT
    noisy_copies: int = 1
    visual_jitter: float = VISUAL_JITTER

    def describe(self) -> dict:
        return dict(self.__dict__)


def load_track(clip: TrainingClip, cache: Path | None) -> dict | None:
    """The clip's longest face track from the landmark cache (computed and stored when missing)."""
    tracks = cached_tracks(clip.path, cache, clip.face_crop)
    return max(tracks, key=lambda t: len(t["landmarks"])) if tracks else None


def add_noise(audio: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """White noise at ``snr_db`` below the clip's mean power (int16 range kept)."""
    samples = np.asarray(audio, dtype=np.float64)
    power = np.mean(samples**2) + 1e-9
    noisy = samples + rng.normal(0.0, np.sqrt(power / 10 ** (snr_db / 10)), size=samples.shape)
    return np.clip(noisy, -32768, 32767).astype(np.int16)


def track_features(tracks: list[dict], visual: str, recipe: Recipe, seed: int = 0,
                   names: list | None = None) -> list[TrackFeatures]:
    """Model inputs (``pad`` 0) of each aligned track, plus ``recipe.noisy_copies`` noisy-sound copies.

    ``tracks``: ``[{"landmarks", "appearance", "audio", "delay"}]`` (:func:`usable_tracks`); a track
    the mesh lost on a fifth of its frames is left out (training wants clean examples).
    """
    rng = np.random.default_rng(seed)
    out = []
    for track in tracks:
        mouth, valid = visual_features(track["landmarks"], None, visual, track["appearance"])
        if valid.mean() < 0.8:
            continue
        audio = aligned_audio(track)
        clean = TrackFeatures.build(mouth, valid, audio, pad=0)
        out.append(clean)
        if names is not None:
            names += [track.get("name", "")] * (1 + recipe.noisy_copies)
        for _ in range(recipe.noisy_copies):
            noisy = add_noise(audio, rng.uniform(*NOISE_SNR_DB), rng)
            out.append(TrackFeatures(TrackFeatures.build(mouth, valid, noisy, pad=0).audio, clean.mouth, valid, 0,
                                     clean.heard))
    return out


#: Frames at each end of an excerpt whose embeddings see the convolutions' zero padding (half the
#: receptive field of the shipped encoders: 3 layers of kernel 5). Left out of the objective: at the
#: true alignment both padded ends would line up and give the answer away.
EDGE_FRAMES = 6


def shift_masks(length: int, max_shift: int, edge: int = EDGE_FRAMES):
    """``(2*max_shift+1, length, length)`` float masks: ``[k, i, j] = 1`` when lips frame ``i`` and sound
    frame ``j = i − s`` (``s = k − max_shift``) are both at least ``edge`` frames inside the excerpt."""
    import torch

    i = torch.arange(length)
    inside = (i >= edge) & (i < length - edge)
    shifts = torch.arange(-max_shift, max_shift + 1)
    pairs = (i[None, :, None] - i[None, None, :]) == shifts[:, None, None]
    return (pairs & inside[None, :, None] & inside[None, None, :]).float()


def multiway_loss(net, audio, mouth, valid, max_shift: int, jitter: float = 0.0):
    """Cross-entropy of the true alignment against every shift within ±``max_shift``.

    ``audio``/``mouth``: ``(batch, frames, features)``; ``valid``: ``(batch, frames)`` mesh found.
    Shift ``s`` pairs lips frame ``i`` with sound frame ``i − s``; its logit is the mean cosine
    similarity over the pairs inside the excerpt (:func:`shift_masks`) with a mesh, and shifts with
    fewer than :data:`MIN_OVERLAP` such pairs are not candidates.
    """
    import torch
    import torch.nn.functional as F

    if jitter:
        mouth = mouth + jitter * torch.randn_like(mouth)
    a, v = net.embed_audio(audio), net.embed_mouth(mouth)
    masks = shift_masks(a.shape[1], max_shift)
    similarity = torch.bmm(v, a.transpose(1, 2)) * valid[:, :, None]  # (batch, lips frame, sound frame)
    counts = torch.einsum("bi,kij->bk", valid, masks)
    logits = torch.einsum("bij,kij->bk", similarity, masks) / counts.clamp(min=1)
    logits = (logits * net.logit_scale).masked_fill(counts < MIN_OVERLAP, float("-inf"))
    return F.cross_entropy(logits, torch.full((a.shape[0],), max_shift))


def train_member(features: list[TrackFeatures], recipe: Recipe, seed: int, log=None, init: dict | None = None,
                 weights: list[float] | None = None):
    """One :class:`~syncnet_fcn.landmark.models.LipSyncNet` trained with :func:`multiway_loss`, from
    scratch or from the state dict ``init`` (fine-tuning a stored member); tracks are drawn with
    probabilities proportional to ``weights`` (equal by default)."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    weights = np.ones(len(features)) if weights is None else np.asarray(weights, dtype=np.float64)
    long_enough = [len(t.mouth) >= 2 * EDGE_FRAMES + WINDOW_FRAMES for t in features]
    tracks = [t for t, ok in zip(features, long_enough) if ok]
    p = weights[long_enough] / weights[long_enough].sum()
    net = make_net(tracks[0].audio.shape[1], tracks[0].mouth.shape[1])
    if init is not None:
        net.load_state_dict(init)
    opt = torch.optim.Adam(net.parameters(), lr=recipe.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, recipe.steps)
    losses = []
    net.train()
    with one_torch_thread():
        for step in range(recipe.steps):
            picks = [tracks[i] for i in rng.choice(len(tracks), size=recipe.batch, p=p)]
            length = min(recipe.clip_frames, min(len(t.mouth) for t in picks))
            starts = [int(rng.integers(0, len(t.mouth) - length + 1)) for t in picks]

            def cut(attr, dtype=np.float32):
                return torch.from_numpy(np.stack([getattr(t, attr)[s : s + length] for t, s in zip(picks, starts)]).astype(dtype))

            loss = multiway_loss(net, cut("audio"), cut("mouth"), cut("valid"), recipe.max_shift, recipe.visual_jitter)
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
            losses.append(loss.item())
            if log and step % 500 == 0:
                log(f"seed {seed} step {step}: loss {np.mean(losses[-100:]):.3f}")
    net.eval()
    return net, losses


def _train_member_job(job):
    features, weights, recipe, seed, init = job
    net, losses = train_member(features, recipe, seed, init=init, weights=weights)
    return net.state_dict(), losses


def corpus_balanced_weights(names: list[str]) -> list[float]:
    """Each corpus (``<corpus>/<clip>`` names) gets an equal share of the draws, however many clips it has."""
    counts: dict[str, int] = {}
    for name in names:
        counts[name.split("/")[0]] = counts.get(name.split("/")[0], 0) + 1
    return [1.0 / counts[name.split("/")[0]] for name in names]


def fit_members(tracks: list[dict], recipe: Recipe, visuals=(VISUAL_LIPS, VISUAL_LIPS_APPEARANCE), seeds=(0, 1),
                provenance: dict | None = None, log=print, workers: int | None = None,
                init: LandmarkModels | None = None) -> LandmarkModels:
    """One CCA per visual kind and one net per (kind, seed), the nets trained in parallel processes;
    with ``init``, each net starts from the stored member of the same kind and position."""
    starts = {}
    if init is not None:
        for visual in visuals:
            kind = [m for m in init.members if m.visual == visual]
            for seed, member in zip(seeds, kind):
                starts[(visual, seed)] = {k: v.float() for k, v in member.net.state_dict().items()}
    jobs, members_meta = [], []
    for visual in visuals:
        names: list[str] = []
        features = track_features(tracks, visual, recipe, names=names)
        weights = corpus_balanced_weights(names)
        clean = [f for i, f in enumerate(features) if i % (recipe.noisy_copies + 1) == 0]
        audio_x = np.concatenate([stack_context(f.audio, CCA_AUDIO_CONTEXT)[f.valid] for f in clean])
        mouth_y = np.concatenate([f.mouth[f.valid] for f in clean])
        cca = fit_cca(audio_x, mouth_y)
        for seed in seeds:
            jobs.append((cca, (features, weights), seed, visual))
            members_meta.append({"visual": visual, "seed": seed, "tracks": len(clean), "frames": int(len(mouth_y)),
                                 "cca_correlations": [round(float(r), 4) for r in cca["rho"]]})
    started = time.time()
    workers = workers or max(1, min(len(jobs), os.cpu_count() or 1))
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(_train_member_job, [(*data, recipe, seed, starts.get((visual, seed)))
                                                     for _, data, seed, visual in jobs]))
    members = []
    for (cca, (features, _), _, visual), (state, losses), meta in zip(jobs, results, members_meta):
        net = make_net(features[0].audio.shape[1], features[0].mouth.shape[1])
        net.load_state_dict(state)
        members.append(LandmarkModel(cca, net.eval(), visual))
        meta["loss_first_last_100"] = [round(float(np.mean(losses[:100])), 4), round(float(np.mean(losses[-100:])), 4)]
    if log:
        log(f"trained {len(jobs)} nets in {time.time() - started:.0f} s")
    info = dict(provenance or {})
    info |= {"recipe": recipe.describe() | {"sampling": "each corpus an equal share of the draws"}, "members": members_meta, "trainer": "syncnet_fcn.landmark_training",
             "initialised_from": None if init is None else init.provenance}
    return LandmarkModels(members, info)


def save_with_card(models: LandmarkModels, path: Path) -> None:
    """The model and, beside it, ``<name>.card.json``: how and on what it was trained."""
    models.save(path)
    card = path.with_name(path.stem + ".card.json")
    card.write_text(json.dumps(models.provenance, indent=1, default=str) + "\n")


# ----------------------------------------------------------------------------------------------------
# the footage, prepared once


def prepare_footage(train_root: Path, clips_dir: Path, cache: Path, log=print) -> dict:
    """Split, duplicate check and sync measurement of the training footage, with each usable clip's
    main track reduced to what training and scoring read (compact mesh, mouth appearance, audio).

    Returns ``{"split", "delays", "sync", "duplicates", "tracks": {name: {...}}}``; remembered in
    ``cache/footage.pkl`` (delete it after changing the footage or these rules).
    """
    import pickle

    from .lip_lag import track_lag_curve
    from .media import load_audio
    from .landmark.mouth import compact_landmarks, mouth_appearance
    from .recordings import find_same_recordings
    from .training_corpus import list_training_clips, measure_sync, split_by_speaker

    stored = cache / "footage.pkl"
    if stored.exists():
        return pickle.loads(stored.read_bytes())
    split = split_by_speaker(list_training_clips(train_root))
    tracks, curves = {}, {}
    for i, clip in enumerate(split.train + split.validation):
        track = load_track(clip, cache)
        if log and i % 500 == 0:
            log(f"face mesh {i}/{len(split.train) + len(split.validation)}")
        if track is None or len(track["landmarks"]) < 2 * WINDOW_FRAMES:
            continue
        landmarks = track["landmarks"]
        found = np.isfinite(landmarks).all(axis=(1, 2))
        curves[clip.name] = track_lag_curve(landmarks, track["audio"])
        tracks[clip.name] = {"landmarks": compact_landmarks(landmarks), "audio": track["audio"],
                             "appearance": mouth_appearance(track["mouth_images"], found)}
    manifest = json.loads((clips_dir / "manifest.json").read_text())
    evaluation = {e["file"]: load_audio(clips_dir / e["file"]) for e in manifest if (clips_dir / e["file"]).exists()}
    duplicates = find_same_recordings({n: t["audio"] for n, t in tracks.items()}, evaluation)
    for name, why in duplicates.items():
        split.excluded[name] = why
    split.train = [c for c in split.train if c.name not in duplicates]
    split.validation = [c for c in split.validation if c.name not in duplicates]
    sync = measure_sync(split.train + split.validation, curves.get, log=log)
    footage = {"split": split, "sync": sync, "duplicates": duplicates,
               "tracks": {n: t for n, t in tracks.items() if n not in duplicates}}
    stored.write_bytes(pickle.dumps(footage))
    return footage


def usable_tracks(footage: dict, side: str, include_dropped: bool = False) -> list[dict]:
    """The aligned tracks of one side of the split (``"train"`` or ``"validation"``); clips the sync
    check dropped are left out, or with ``include_dropped`` kept as they are (delay 0)."""
    delays = footage["sync"]["delay"]
    out = []
    for clip in getattr(footage["split"], side):
        track = footage["tracks"].get(clip.name)
        delay = delays.get(clip.name, 0.0 if include_dropped else None)
        if delay is None and include_dropped:
            delay = 0.0
        if track is not None and delay is not None:
            out.append({**track, "name": clip.name, "delay": delay})
    return out


def aligned_audio(track: dict) -> np.ndarray:
    return shift_audio(track["audio"], track["delay"]) if track.get("delay") else track["audio"]


# ----------------------------------------------------------------------------------------------------
# calibration on training speakers (never on the evaluation clips)


def bias_error(landmarks: np.ndarray, audio: np.ndarray, models: LandmarkModels, max_offset: int = 15,
               mouth_images: np.ndarray | None = None, appearance: np.ndarray | None = None) -> float:
    """Sub-frame reading of one in-sync track before any bias correction: the lead of its lips over
    its sound, in frames (``mouth_images``, or their compact ``appearance``, feed the mouth-image members)."""
    from .evaluation import subframe_minimum
    from .landmark.reading import frame_scores, window_distances
    from .scoring import offset_axis

    scores, _ = frame_scores(landmarks, audio, max_offset, models, 0.0, mouth_images, appearance)
    curve = window_distances(scores).mean(axis=0)[::-1]  # offsets ascending
    return subframe_minimum(curve, offset_axis(max_offset))


def calibrate_on_footage(tracks: list[dict], models: LandmarkModels, max_offset: int = 15) -> dict:
    """The engine's calibration measured on aligned training tracks (:func:`usable_tracks`).

    Bias: the robust median of the sub-frame readings of the tracks, which are in sync after alignment.
    Thresholds: each face with the sound of the next track from another source page
    (:func:`syncnet_fcn.evaluation.wrong_pair_thresholds`), so that such pairs read unreliable.
    """
    from .landmark.reading import score_track
    from .evaluation import foreign_audio, robust_bias, wrong_pair_thresholds

    errors = {t["name"]: bias_error(t["landmarks"], aligned_audio(t), models, max_offset, appearance=t["appearance"])
              for t in tracks}
    bias = robust_bias(list(errors.values()))
    base = {"bias_frames": bias, "reliable_confidence": -np.inf}
    true_conf, wrong_conf, wrong_frames = {}, {}, []
    for i, t in enumerate(tracks):
        audio = aligned_audio(t)
        true_conf[t["name"]] = float(score_track(t["landmarks"], audio, max_offset, models, base,
                                                 appearance=t["appearance"]).confidence)
        source = t["name"].split("/")[1].split("__")[0]
        other = next((u for u in tracks[i + 1 :] + tracks[:i] if u["name"].split("/")[1].split("__")[0] != source), None)
        if other is None:
            continue
        wrong = score_track(t["landmarks"], foreign_audio(aligned_audio(other), len(audio)), max_offset, models, base,
                            appearance=t["appearance"])
        wrong_conf[f"{t['name']} + audio of {other['name']}"] = float(wrong.confidence)
        wrong_frames.append(wrong.per_frame_confidence)
    thresholds = wrong_pair_thresholds(true_conf, wrong_conf, wrong_frames)
    stored = ("reliable_confidence", "speaking_threshold", "relative_speaking_threshold")
    return {
        "bias_frames": bias,
        **{key: thresholds[key] for key in stored},
        "measured_on": f"{len(tracks)} aligned training tracks of held-in speakers (syncnet_fcn.landmark_training); "
                       "no evaluation clip",
        "bias_measurement": {"how": "robust median of sub-frame readings of aligned (in-sync) training tracks "
                                    "(each track's sound delayed by its page's measured lag, `delays`)",
                             "errors": errors, "delays": {t["name"]: t["delay"] for t in tracks}},
        "threshold_measurement": {
            "how": "confidence of each face with the sound of the next track from another source page; "
                   "reliable_confidence = the largest; speaking_threshold = 95th percentile of those pairs' "
                   "per-frame confidences; relative_speaking_threshold = their median",
            "wrong_audio": wrong_conf, "true_audio": true_conf,
            "true_pairs_above_threshold": thresholds["true_pairs_above_threshold"],
        },
    }


def calibrate_on_training_speakers(footage: dict, models: LandmarkModels) -> dict:
    """:func:`calibrate_on_footage` on the aligned harvest2 tracks of the training side of the split
    (as ``data/landmark_calibration.json`` was measured): the one recipe for a shipped calibration."""
    return calibrate_on_footage([t for t in usable_tracks(footage, "train") if t["name"].startswith("harvest2/")],
                                models)


def main(argv=None) -> int:
    import argparse

    from .landmark.models import CALIBRATION_PATH, MODEL_PATH, load_models

    shared = Path(__file__).resolve().parents[2] / "shared"
    p = argparse.ArgumentParser(prog="python -m syncnet_fcn.landmark_training", description=__doc__.split("\n\n")[0])
    p.add_argument("--cache", type=Path, required=True, help="landmark cache outside the repository")
    p.add_argument("--out", type=Path, help="model file to write (a .card.json and a calibration beside it)")
    p.add_argument("--calibrate-only", action="store_true",
                   help=f"no training: measure the shipped model's calibration on training speakers and write "
                        f"it to {CALIBRATION_PATH.name}")
    p.add_argument("--train-root", type=Path, default=shared / "train")
    p.add_argument("--clips-dir", type=Path, default=shared / "clips", help="evaluation clips: kept out of training")
    p.add_argument("--steps", type=int, default=Recipe.steps)
    p.add_argument("--lr", type=float, default=Recipe.lr)
    p.add_argument("--max-shift", type=int, default=MAX_SHIFT)
    p.add_argument("--noisy-copies", type=int, default=1)
    p.add_argument("--from-shipped", action="store_true", help=f"fine-tune the members of {MODEL_PATH.name}")
    p.add_argument("--workers", type=int, default=None)
    args = p.parse_args(argv)
    if args.out is None and not args.calibrate_only:
        p.error("--out is required unless --calibrate-only is given")

    footage = prepare_footage(args.train_root, args.clips_dir, args.cache)
    if args.calibrate_only:
        calibration = calibrate_on_training_speakers(footage, load_models())
        CALIBRATION_PATH.write_text(json.dumps(calibration, indent=1) + "\n")
        print(f"wrote {CALIBRATION_PATH}: bias {calibration['bias_frames']:+.3f} frames, "
              f"reliable_confidence {calibration['reliable_confidence']:.3f}")
        return 0
    train = usable_tracks(footage, "train")
    recipe = Recipe(steps=args.steps, lr=args.lr, max_shift=args.max_shift, noisy_copies=args.noisy_copies)
    split = footage["split"]
    provenance = {
        "footage": {"train_root": "../shared/train", "corpora": sorted({c.corpus for c in split.train}),
                    "train_tracks": len(train), "train_frames": int(sum(len(t["landmarks"]) for t in train)),
                    "validation_tracks": len(usable_tracks(footage, "validation")), "split": split.describe(),
                    "sync": footage["sync"]["sources"],
                    "dropped_out_of_sync": sorted(n for n, d in footage["sync"]["delay"].items() if d is None)},
    }
    init = LandmarkModels.load(MODEL_PATH) if args.from_shipped else None
    models = fit_members(train, recipe, provenance=provenance, init=init, workers=args.workers)
    save_with_card(models, args.out)
    calibration = calibrate_on_training_speakers(footage, models)
    calibration_path = args.out.with_name(args.out.stem + ".calibration.json")
    calibration_path.write_text(json.dumps(calibration, indent=1) + "\n")
    print(f"wrote {args.out}, its card and {calibration_path.name}: bias {calibration['bias_frames']:+.3f}, "
          f"reliable_confidence {calibration['reliable_confidence']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
