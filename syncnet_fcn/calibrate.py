"""FCN-SyncNet calibration: make the fully convolutional engine read like the sliding-window one.

Why it is needed: the windowed audio stream sees each 0.2 s MFCC window alone, zero-padded at its
edges; run fully convolutionally it sees the real neighbouring audio instead, so its embeddings differ
near the window edges. The video stream has no such difference (it is exact).

What is fitted, over speech, never per clip:

1. **Audio head refit.** The audio head's last layer (``Linear(w6, D)``) is refitted in closed form
   (ridge least squares, pulled towards the original layer) so that, applied to the fully
   convolutional penultimate features, it reproduces the *windowed* embeddings. Audio alone suffices:
   any speech recording gives thousands of windows.
2. **Distance map** (optional, needs face tracks): an affine map ``d → scale·d + shift`` fitted by least
   squares between the FCN and the sliding-window distance matrices of the same tracks. It cannot move
   an offset (scale > 0), only align the confidence and min-distance scale.

Held-out sources measure how well it generalises; everything is stored with its provenance in
``<weights>.fcn-calibration.json`` beside the weights.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from .audio import mfcc, mfcc_windows
from .engines.calibration import (
    FCNCalibration,
    calibration_path,
    load_calibration,
    load_thresholds,
    save_calibration,
    thresholds_path,
)
from .errors import InvalidArgumentError
from .media import VIDEO_SUFFIXES

# speech for the audio-head refit may come from videos or from audio files
MEDIA_SUFFIXES = VIDEO_SUFFIXES | {".wav", ".flac", ".mp3", ".m4a"}

#: progress(stage, fraction)
ProgressCallback = Callable[[str, float], None]


def run_thresholds(weights: str | None, videos: Sequence[str | os.PathLike], engines=("syncnet", "fcn"),
                   out: str | os.PathLike | None = None, progress=None) -> dict:
    """Measure (:func:`syncnet_fcn.evaluation.measure_thresholds`) and store the thresholds of ``weights``."""
    from .engines import create_engine
    from .evaluation import measure_thresholds
    from .weights import resolve_weights, sha256_file

    weights_path = resolve_weights(weights)
    files = _expand_inputs(videos)
    result = {
        "weights": weights_path.name,
        "weights_sha256": sha256_file(weights_path),
        "videos": len(files),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "engines": {},
    }
    for name in engines:
        engine = create_engine(name, str(weights_path))
        try:
            result["engines"][name] = measure_thresholds(engine, files, progress=progress)
        except ValueError as exc:
            raise InvalidArgumentError(str(exc)) from exc
    target = Path(out) if out is not None else thresholds_path(weights_path)
    partial = target.with_name(target.name + ".part")
    try:
        partial.write_text(json.dumps(result, indent=1) + "\n")
        os.replace(partial, target)
    except OSError as exc:
        raise InvalidArgumentError(f"cannot write the thresholds to {target}: {exc.strerror}; use --out") from exc
    return {"path": str(target), **{
        name: {k: v[k] for k in ("reliable_confidence", "speaking_threshold", "true_pairs_above_threshold")}
        for name, v in result["engines"].items()}}


# fitting ---------------------------------------------------------------------------------------------
def audio_pairs(model, audio_int16: np.ndarray, batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """``(fcn_features (n, w6), windowed_embeddings (n, D))`` for every complete window of ``audio``."""
    from .model import FullyConvSyncNet

    columns = mfcc(np.asarray(audio_int16, dtype=np.int16))
    n_windows = max(0, (columns.shape[1] - 20) // 4 + 1)
    if n_windows == 0:
        dim_in = model.netfcaud[0].in_features
        return np.zeros((0, dim_in), np.float32), np.zeros((0, model.config.embedding_dim), np.float32)
    fcn = FullyConvSyncNet(model)
    device = next(model.parameters()).device
    with torch.inference_mode():
        features = fcn.audio_features(torch.from_numpy(columns)[None, None].to(device))[:n_windows]
        windowed = []
        for first in range(0, n_windows, batch):
            count = min(batch, n_windows - first)
            windows = torch.from_numpy(mfcc_windows(columns[:, 4 * first :], count)).to(device)
            windowed.append(model.forward_audio(windows))
    return features.cpu().numpy(), torch.cat(windowed).cpu().numpy()


def fit_audio_head(features: np.ndarray, targets: np.ndarray, prior_weight: np.ndarray, prior_bias: np.ndarray,
                   ridge: float = 1e-3) -> tuple[np.ndarray, np.ndarray]:
    """Ridge least squares ``targets ≈ features @ W.T + b``, shrunk towards the original layer.

    Minimises ``‖[X 1] B − Y‖² + λ‖B − B₀‖²`` with ``λ = ridge · trace(XᵀX) / (w6 + 1)``, so with little
    data the layer stays what it was.
    """
    x = np.concatenate([features, np.ones((len(features), 1))], axis=1).astype(np.float64)
    y = targets.astype(np.float64)
    prior = np.concatenate([prior_weight.T, prior_bias[None, :]], axis=0).astype(np.float64)  # (w6+1, D)
    gram = x.T @ x
    lam = ridge * np.trace(gram) / gram.shape[0]
    solution = np.linalg.solve(gram + lam * np.eye(gram.shape[0]), x.T @ y + lam * prior)
    return solution[:-1].T.astype(np.float32), solution[-1].astype(np.float32)


def fit_affine(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Least squares ``y ≈ scale·x + shift`` over all entries."""
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    design = np.stack([x, np.ones_like(x)], axis=1)
    (scale, shift), *_ = np.linalg.lstsq(design, y, rcond=None)
    return float(scale), float(shift)


def _embedding_errors(predicted: np.ndarray, targets: np.ndarray) -> dict:
    """Mean relative error ‖p − t‖/‖t‖ and the error relative to typical between-window distances."""
    if len(targets) == 0:
        return {"relative": None, "vs_spread": None}
    error = np.linalg.norm(predicted - targets, axis=1)
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, len(targets), size=(2, min(2000, len(targets) * 4)))
    spread = np.linalg.norm(targets[a] - targets[b], axis=1).mean()
    return {
        "relative": float(np.mean(error / np.maximum(np.linalg.norm(targets, axis=1), 1e-12))),
        "vs_spread": float(error.mean() / max(spread, 1e-12)),
    }


def _reading_errors(reference, candidate) -> dict:
    return {
        "offset_equal": bool(reference.offset_frames == candidate.offset_frames),
        "confidence_rel_err": float(abs(candidate.confidence - reference.confidence) / max(abs(reference.confidence), 1e-9)),
        "min_dist_rel_err": float(abs(candidate.min_dist - reference.min_dist) / max(abs(reference.min_dist), 1e-9)),
    }


def fit_calibration(
    model,
    audio_sources: Iterable[tuple[str, np.ndarray]],
    tracks: Iterable[tuple[str, Iterable[np.ndarray], np.ndarray]] | None = None,
    *,
    ridge: float = 1e-3,
    holdout_every: int = 5,
    max_windows: int = 30000,
    max_offset: int = 15,
    progress: ProgressCallback | None = None,
) -> FCNCalibration:
    """Fit a calibration for ``model`` (a loaded :class:`~syncnet_fcn.model.SyncNet`, eval mode).

    ``audio_sources`` yields ``(name, int16 audio)``; every ``holdout_every``-th source is held out to
    measure the fit (``holdout_every=0``: none). ``tracks`` optionally yields ``(name, crop chunks,
    track audio)`` face tracks for the distance map and the end-to-end comparison with the original.
    """
    train_x, train_y, test_x, test_y = [], [], [], []
    used, held_out = [], []
    total = 0
    for index, (name, audio) in enumerate(audio_sources):
        features, windowed = audio_pairs(model, audio)
        if len(features) == 0:
            continue
        is_test = holdout_every and index % holdout_every == holdout_every - 1
        (test_x if is_test else train_x).append(features)
        (test_y if is_test else train_y).append(windowed)
        (held_out if is_test else used).append(str(name))
        total += len(features)
        if progress is not None:
            progress("audio", min(1.0, total / max_windows))
        if total >= max_windows:
            break
    if not train_x:
        raise InvalidArgumentError("calibration needs speech: no input gave a complete 0.2 s audio window")
    x, y = np.concatenate(train_x), np.concatenate(train_y)
    if len(x) < 2 * x.shape[1]:
        raise InvalidArgumentError(
            f"calibration needs more speech: {len(x)} windows for a {x.shape[1]}-feature head "
            f"(at least {2 * x.shape[1]}, about {2 * x.shape[1] / 25:.0f} s)"
        )
    last = model.netfcaud[3]
    prior_w = last.weight.detach().cpu().numpy()
    prior_b = last.bias.detach().cpu().numpy()
    weight, bias = fit_audio_head(x, y, prior_w, prior_b, ridge)

    residuals = {"train_windows": int(len(x)), "held_out_windows": int(sum(len(t) for t in test_x))}
    for label, xs, ys in (("train", train_x, train_y), ("held_out", test_x, test_y)):
        if not xs:
            continue
        fx, fy = np.concatenate(xs), np.concatenate(ys)
        residuals[f"{label}_before"] = _embedding_errors(fx @ prior_w.T + prior_b, fy)
        residuals[f"{label}_after"] = _embedding_errors(fx @ weight.T + bias, fy)

    calibration = FCNCalibration(head_weight=weight, head_bias=bias)
    provenance = {
        "audio_sources": used,
        "held_out_sources": held_out,
        "ridge": ridge,
        "audio_residuals": residuals,
        "distance_map": "identity (no face tracks given)",
    }
    if tracks is not None:
        provenance.update(_fit_distance_map(model, calibration, tracks, max_offset, progress))
    calibration.provenance = provenance
    return calibration


def _fit_distance_map(model, calibration: FCNCalibration, tracks, max_offset: int, progress) -> dict:
    """Compare the engines on face tracks, fit the affine distance map, report readings before/after."""
    from .engines.fcn import FCNEngine
    from .engines.syncnet import SlidingWindowEngine
    from .scoring import summarize

    reference_engine = SlidingWindowEngine(model)
    raw_engine = FCNEngine(model)
    head_engine = FCNEngine(model, calibration=FCNCalibration(calibration.head_weight, calibration.head_bias))
    names, references, raws, heads = [], [], [], []
    for name, chunks, audio in tracks:
        chunks = list(chunks)
        n_frames = sum(len(c) for c in chunks)
        readings = []
        for engine in (reference_engine, raw_engine, head_engine):
            scorer = engine.start_track(audio, n_frames, max_offset)
            for chunk in chunks:
                scorer.push(chunk)
            readings.append(scorer.finish())
        if readings[0].dists is None:
            continue
        names.append(str(name))
        references.append(readings[0])
        raws.append(readings[1])
        heads.append(readings[2])
    if progress is not None:
        progress("tracks", 1.0)
    if not names:
        return {"distance_map": "identity (no usable face track in the inputs)"}
    scale, shift = fit_affine(np.concatenate([r.dists for r in heads]), np.concatenate([r.dists for r in references]))
    if scale <= 0:
        scale, shift = 1.0, 0.0  # a map that would flip distances is no calibration
    calibration.distance_scale, calibration.distance_shift = scale, shift
    per_track = []
    for name, ref, raw, head in zip(names, references, raws, heads):
        final = summarize(calibration.apply_to_distances(head.dists), max_offset)
        per_track.append({
            "track": name,
            "reference": {"offset": ref.offset_frames, "confidence": ref.confidence, "min_dist": ref.min_dist},
            "uncalibrated": _reading_errors(ref, raw),
            "calibrated": _reading_errors(ref, final),
        })
    return {
        "distance_map": {"scale": scale, "shift": shift, "fitted_on_tracks": names},
        "track_residuals": per_track,
    }


# the `syncnet-fcn calibrate` backend --------------------------------------------------------------
def _expand_inputs(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    files: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in MEDIA_SUFFIXES))
        elif path.is_file():
            files.append(path)
        else:
            raise InvalidArgumentError(f"calibration input {path} does not exist")
    if not files:
        raise InvalidArgumentError("no audio or video files among the calibration inputs")
    return files


def _face_tracks(files: list[Path], max_tracks: int):
    """``(name, crop chunks, audio)`` for face tracks found by the toolkit's own tracker and crops."""
    from .crops import iter_track_crops
    from .media import load_audio
    from .media import track_audio
    from .tracking import find_face_tracks

    found = 0
    for path in files:
        if found >= max_tracks:
            return
        try:
            tracks = find_face_tracks(path)
            audio = load_audio(path)
        except Exception:  # audio-only inputs, unreadable files: they still served the audio fit
            continue
        chunks: dict[int, list[np.ndarray]] = {}
        for track_id, _first, crops in iter_track_crops(path, tracks, size=224, chunk=128):
            chunks.setdefault(track_id, []).append(crops)
        for track in tracks:
            if found >= max_tracks:
                return
            found += 1
            yield f"{path.name}#{track.track_id}", chunks.get(track.track_id, []), track_audio(audio, track.start_frame, track.n_frames)


def run_calibration(
    weights: str | None,
    inputs: Sequence[str | os.PathLike],
    out: str | os.PathLike | None = None,
    progress: ProgressCallback | None = None,
    *,
    max_windows: int = 30000,
    max_tracks: int = 8,
    use_faces: bool = True,
) -> dict:
    """Fit and save the FCN calibration for ``weights`` on media files or folders of them.

    Audio of every input feeds the audio-head fit; with ``use_faces`` the first ``max_tracks`` face
    tracks also fit the distance map and give the end-to-end comparison. Returns a summary (where it
    was written, sources, residuals).
    """
    from .media import load_audio
    from .model import load_model
    from .weights import resolve_weights, sha256_file

    weights_path = resolve_weights(weights)
    model = load_model(weights_path)
    files = _expand_inputs(inputs)

    def audio_sources():
        for path in files:
            try:
                yield path.name, load_audio(path)
            except Exception:  # a file without usable audio contributes nothing
                continue

    tracks = None
    if use_faces:
        try:
            import importlib

            importlib.import_module(".crops", __package__)
            tracks = _face_tracks(files, max_tracks)
        except ImportError:
            tracks = None
    calibration = fit_calibration(model, audio_sources(), tracks, max_windows=max_windows, progress=progress)
    calibration.provenance.update({
        "weights": str(weights_path),
        "weights_sha256": sha256_file(weights_path),
        "model": model.config.to_dict(),
        "inputs": [str(p) for p in inputs],
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    })
    target = Path(out) if out is not None else calibration_path(weights_path)
    if target.is_dir():
        target = target / calibration_path(weights_path).name
    try:
        save_calibration(calibration, target)
    except OSError as exc:
        raise InvalidArgumentError(f"cannot write the calibration to {target}: {exc.strerror}; use --out") from exc
    summary = {k: v for k, v in calibration.provenance.items() if k != "model"}
    summary["path"] = str(target)
    summary["distance_scale"] = calibration.distance_scale
    summary["distance_shift"] = calibration.distance_shift
    return summary
