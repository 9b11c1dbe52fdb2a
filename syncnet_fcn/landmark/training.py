"""Fitting the landmark engine's models on in-sync talking faces (``python -m syncnet_fcn.landmark fit``).

:func:`track_landmarks` runs the face mesh over a video's face tracks (or over whole frames of
footage cropped already), :func:`cached_tracks` keeps what it found between runs, :func:`fit` fits one
member per (visual features, seed): a CCA and a ``LipSyncNet`` (:func:`train_net`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import InvalidArgumentError
from .features import VISUAL_LIPS, VISUAL_LIPS_APPEARANCE, TrackFeatures, stack_context, visual_features
from .models import CCA_AUDIO_CONTEXT, LandmarkModel, LandmarkModels, fit_cca, make_net, one_torch_thread
from .reading import WINDOW_FRAMES


def train_net(tracks: list[TrackFeatures], steps: int = 5000, max_shift: int = 8, clip_frames: int = 31,
              batch: int = 32, lr: float = 2e-3, seed: int = 0, log=print):
    """Train :class:`LipSyncNet` on in-sync tracks (``pad`` 0): for random windows of 5, 9 or all
    central frames, the mean similarity at each shift within ±``max_shift`` is a logit and the true
    shift (0) the class."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    tracks = [t for t in tracks if len(t.mouth) >= 2 * max_shift + WINDOW_FRAMES]
    net = make_net(tracks[0].audio.shape[1], tracks[0].mouth.shape[1])
    with one_torch_thread():
        _train_steps(net, tracks, steps, max_shift, clip_frames, batch, lr, rng, log)
    net.eval()
    return net


def _train_steps(net, tracks, steps, max_shift, clip_frames, batch, lr, rng, log):
    """Adam with a cosine learning-rate decay over ``steps`` batches of random track excerpts."""
    import torch
    import torch.nn.functional as F

    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    net.train()
    for step in range(steps):
        picks = [tracks[i] for i in rng.integers(len(tracks), size=batch)]
        length = min(clip_frames, min(len(t.mouth) for t in picks))
        starts = [rng.integers(0, len(t.mouth) - length + 1) for t in picks]
        audio = torch.from_numpy(np.stack([t.audio[s : s + length] for t, s in zip(picks, starts)]))
        mouth = torch.from_numpy(np.stack([t.mouth[s : s + length] for t, s in zip(picks, starts)]))
        valid = np.stack([t.valid[s : s + length] for t, s in zip(picks, starts)])
        valid = torch.from_numpy(valid.astype(np.float32))
        a, v = net.embed_audio(audio), net.embed_mouth(mouth)
        lo, hi = max_shift, length - max_shift
        width = int(rng.choice([5, 9, hi - lo]))
        first = int(rng.integers(lo, hi - min(width, hi - lo) + 1))
        frames = torch.arange(first, first + min(width, hi - lo))
        w = valid[:, frames]
        logits = torch.stack(
            [((v[:, frames] * a[:, frames - o]).sum(-1) * w).sum(1) / w.sum(1).clamp(min=1)
             for o in range(-max_shift, max_shift + 1)],
            dim=1,
        ) * net.logit_scale
        loss = F.cross_entropy(logits, torch.full((batch,), max_shift))
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
        if log and step % 500 == 0:
            log(f"step {step}: loss {loss.item():.3f}")



def track_landmarks(video, whole_frame: bool = False, face_tracks=None) -> list[dict]:
    """``[{"landmarks", "mouth_images", "audio", "start"}]`` for the face tracks of ``video``.

    ``whole_frame`` treats every frame as the face crop (for training footage that is cropped
    already), skipping detection and tracking; ``face_tracks`` are tracks found already (a pipeline's),
    so that they are not searched for again.
    """
    import cv2

    from ..crops import iter_track_crops
    from ..media import iter_frames, load_audio, track_audio
    from .mouth import FaceMeshTracker

    audio = load_audio(video)
    if whole_frame:
        crops = [cv2.resize(img, (224, 224), interpolation=cv2.INTER_AREA) for _, img in iter_frames(video)]
        if not crops:
            return []
        mesh = FaceMeshTracker()
        landmarks, images = mesh.process_with_mouth(np.stack(crops))
        mesh.close()
        return [{"landmarks": landmarks, "mouth_images": images, "audio": track_audio(audio, 0, len(landmarks)), "start": 0}]
    from ..tracking import find_face_tracks

    tracks = find_face_tracks(video) if face_tracks is None else face_tracks
    meshes = {t.track_id: FaceMeshTracker() for t in tracks}
    chunks: dict[int, list] = {t.track_id: [] for t in tracks}
    for track_id, _first, crops in iter_track_crops(video, tracks, size=224):
        chunks[track_id].append(meshes[track_id].process_with_mouth(crops))
    out = []
    for t in tracks:
        meshes[t.track_id].close()
        out.append({
            "landmarks": np.concatenate([c[0] for c in chunks[t.track_id]]),
            "mouth_images": np.concatenate([c[1] for c in chunks[t.track_id]]),
            "audio": track_audio(audio, t.start_frame, t.n_frames),
            "start": t.start_frame,
        })
    return out


def cached_tracks(video: Path, cache: Path | None, whole_frame: bool, face_tracks=None) -> list[dict]:
    """:func:`track_landmarks`, remembered in ``cache`` as ``<folder>/<video name>.npz`` (keys
    ``lm_i``, ``roi_i``, ``audio_i``, ``start_i`` per track)."""
    path = None if cache is None else cache / video.parent.name / f"{video.name}.npz"
    if path is not None and path.exists():
        data = np.load(path)
        count = len([k for k in data if k.startswith("lm_")])
        return [{"landmarks": data[f"lm_{i}"], "mouth_images": data[f"roi_{i}"], "audio": data[f"audio_{i}"],
                 "start": int(data[f"start_{i}"])} for i in range(count)]
    tracks = track_landmarks(video, whole_frame, face_tracks)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {}
        for i, t in enumerate(tracks):
            arrays |= {f"lm_{i}": t["landmarks"], f"roi_{i}": t["mouth_images"], f"audio_{i}": t["audio"],
                       f"start_{i}": np.array(t["start"])}
        np.savez_compressed(path, **arrays)
    return tracks


def fit(cropped: list[Path], tracked: list[Path] = (), cache: Path | None = None, steps: int = 5000,
        visuals: tuple[str, ...] = (VISUAL_LIPS, VISUAL_LIPS_APPEARANCE), seeds: tuple[int, ...] = (0, 1),
        log=print) -> LandmarkModels:
    """Fit one member per (visual features, seed) on in-sync talking-face videos: ``cropped`` ones are
    face crops already (every frame is the face), ``tracked`` ones go through face detection and
    tracking. Lip contours and mouth images err on different clips, and nets of different seeds on
    different frames: averaged, their scores err less."""
    from ..datasets import EVALUATION_DUPLICATES, MIN_TRACK_FRAMES as MIN_TRAINING_TRACK_FRAMES

    tracks = []
    videos = [(v, True) for v in cropped] + [(v, False) for v in tracked]
    # a training clip that is the same recording as an evaluation clip would leak into the benchmark
    videos = [(v, w) for v, w in videos if f"{v.parent.name}/{v.stem}" not in EVALUATION_DUPLICATES]
    for i, (video, whole_frame) in enumerate(videos):
        tracks += [t for t in cached_tracks(video, cache, whole_frame) if len(t["landmarks"]) >= MIN_TRAINING_TRACK_FRAMES]
        if log and i % 200 == 0:
            log(f"face mesh {i}/{len(videos)}")
    provenance = {"videos": sorted({v.parent.name for v, _ in videos}), "net_steps": steps, "members": []}
    jobs = []  # (cca, features, seed, visual)
    for visual in visuals:
        features = []
        for track in tracks:
            mouth, valid = visual_features(track["landmarks"], track["mouth_images"], visual)
            # training wants clean examples: a face the mesh lost on a fifth of the frames is left out
            if valid.mean() >= 0.8:
                features.append(TrackFeatures.build(mouth, valid, track["audio"], pad=0))
        if not features:
            raise InvalidArgumentError("no usable talking-face tracks to fit the landmark models on")
        audio_x = np.concatenate([stack_context(f.audio, CCA_AUDIO_CONTEXT)[f.valid] for f in features])
        mouth_y = np.concatenate([f.mouth[f.valid] for f in features])
        cca = fit_cca(audio_x, mouth_y)
        for seed in seeds:
            jobs.append((cca, features, seed, visual))
            provenance["members"].append({
                "visual": visual, "seed": seed, "tracks": len(features), "frames": int(len(mouth_y)),
                "cca_correlations": [round(float(r), 4) for r in cca["rho"]],
            })
    # each net trains on one thread (see one_torch_thread): one process per core. Spawned, not
    # forked: a fork of a process whose mediapipe or torch threads are running can deadlock.
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    workers = max(1, min(len(jobs), os.cpu_count() or 1))
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        nets = pool.map(_train_member, [(features, steps, seed) for _, features, seed, _ in jobs])
        members = [LandmarkModel(cca, _net_from_state(state, features), visual)
                   for (cca, features, _, visual), state in zip(jobs, nets)]
    return LandmarkModels(members, provenance)


def _train_member(job):
    """One net in a worker process; it comes back as a state dict (the module's class is local)."""
    features, steps, seed = job
    return train_net(features, steps=steps, seed=seed, log=None).state_dict()


def _net_from_state(state: dict, features: list[TrackFeatures]):
    net = make_net(features[0].audio.shape[1], features[0].mouth.shape[1])
    net.load_state_dict(state)
    return net.eval()

