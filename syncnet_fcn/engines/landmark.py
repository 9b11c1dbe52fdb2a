"""The embedded ``landmark`` engine: lip movement from mediapipe's face mesh against the sound.

Needs no downloaded weights: mediapipe ships the face-mesh model, and the small models this engine
learns live in the package (``data/landmark_model.pt``, ``data/landmark_calibration.json``).

Per face track:

1. the face mesh runs on every 224×224 crop in tracking mode (:mod:`syncnet_fcn.mouth`) and gives
   pose-normalised lip features per 25 fps frame, and beside them the mouth image cut in a face frame
   fixed by the skull (:class:`~syncnet_fcn.mouth.MouthRegion`), reduced to its low spatial
   frequencies — teeth, tongue and the dark of an open mouth, which the lip contour does not show;
2. the track's audio gives speech features on the same timeline (:func:`audio_frame_features`: for
   each of the four 10 ms steps of a frame, 13 MFCC, speech-band log energy and spectral flux);
3. the stored members — each fitted on lip features alone or on lips plus mouth image — score every
   frame against the audio of every candidate offset with two audio–lip models:

   * a canonical correlation model (CCA, :func:`fit_cca`): the directions in which lips and ±2 frames
     of sound co-vary linearly; the score is the product of the two projections;
   * :class:`LipSyncNet`, two small temporal convolution encoders trained (:func:`train_net`) so that
     the cosine similarity of lip and sound embeddings peaks at the true alignment against ±8 frames;

   every model's per-frame scores are centred and scaled over the track (so they add fairly) and
   averaged. A pair whose audio lies beyond the track, or is digital silence (:func:`heard_frames`:
   audio that is not there, such as the gap a shifted or late-starting track leaves), counts as a
   typical pair (score 0), as SyncNet's zero padding does, so that barely-overlapping extreme offsets
   cannot win by noise;
4. ``dists = −score`` averaged over 5-frame windows gives the usual ``(windows, 2*max_offset+1)``
   matrix and :func:`syncnet_fcn.scoring.summarize` the offset, confidence and the rest. Offsets are
   corrected by the calibrated lead of lips over sound (:func:`calibrate`), applied as a sub-frame
   audio delay before scoring.

Confidence is the original's ``median(curve) − min(curve)`` — the score's gain at the best offset over
a typical one, in units of the per-frame score's spread — times the square root of the frames with a
face mesh, so that a word and a speech are judged on one scale (roughly: standard errors by which the
best offset stands out). Tracks below the calibrated ``reliable_confidence`` — the highest confidence
seen for faces paired with other clips' audio — are flagged unreliable. ``per_frame_confidence``
(:func:`local_confidence`) asks the same question of the second around each frame, at the track's
offset, so that a face heard only part of the time stands out where it is heard.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .. import AUDIO_SAMPLE_RATE, SAMPLES_PER_FRAME
from ..errors import EngineUnavailableError, InvalidArgumentError
from .base import SyncEngine, TrackScorer, TrackSync

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
MODEL_PATH = DATA_DIR / "landmark_model.pt"
CALIBRATION_PATH = DATA_DIR / "landmark_calibration.json"

# Audio analysis: 25 ms Hamming windows every 10 ms, four per 40 ms video frame, centred on the frame.
WINDOW_SAMPLES = 400
HOP_SAMPLES = 160
STEPS_PER_FRAME = SAMPLES_PER_FRAME // HOP_SAMPLES  # 4
FFT_SIZE = 512
N_MEL_BANDS = 26
N_MFCC = 13
PRE_EMPHASIS = 0.97
SPEECH_BAND_HZ = (300.0, 3000.0)
# Digital silence must not become log(0): energies are floored this far below the track's median.
ENERGY_FLOOR_RATIO = 1e-3
AUDIO_FEATURES = STEPS_PER_FRAME * (N_MFCC + 2)  # 60
AUDIO_BLOCK_STEPS = 4096  # analysis windows whose spectra are computed together
# Frames of audio context either side of a frame for the CCA.
CCA_AUDIO_CONTEXT = 2
# Sync distances are judged over 5-frame windows, like SyncNet's.
WINDOW_FRAMES = 5
MIN_TRACK_FRAMES = WINDOW_FRAMES + 1
# Fewer frames with a face mesh (or with sound) than this and nothing can be said.
MIN_MESH_FRAMES = 10


# ----------------------------------------------------------------------------------------------------
# features


def audio_frame_features(audio: np.ndarray, n_frames: int, pad_frames: int = 0) -> np.ndarray:
    """``(n_frames + 2*pad_frames, 60)`` float32 features per 25 fps frame.

    Row ``r`` describes timeline frame ``r - pad_frames``; frames outside the audio are digital
    silence. Columns: the 13 MFCC of each of the frame's four 10 ms steps (52), then the four steps'
    speech-band log energies, then their positive spectral fluxes.
    """
    from python_speech_features import get_filterbanks
    from scipy.fft import dct

    samples = np.asarray(audio, dtype=np.float64).reshape(-1)
    needed = n_frames * SAMPLES_PER_FRAME
    samples = samples[:needed] if len(samples) >= needed else np.pad(samples, (0, needed - len(samples)))
    # centre the four analysis windows on the frame: step j of frame i starts at 640*i + 160*j - 120
    lead = pad_frames * SAMPLES_PER_FRAME + (WINDOW_SAMPLES - HOP_SAMPLES) // 2
    tail = pad_frames * SAMPLES_PER_FRAME + WINDOW_SAMPLES
    samples = np.concatenate([np.zeros(lead), samples, np.zeros(tail)])
    samples[1:] = samples[1:] - PRE_EMPHASIS * samples[:-1]

    rows = n_frames + 2 * pad_frames
    steps = rows * STEPS_PER_FRAME
    all_windows = np.lib.stride_tricks.sliding_window_view(samples, WINDOW_SAMPLES)
    hamming = np.hamming(WINDOW_SAMPLES)
    banks = get_filterbanks(N_MEL_BANDS, FFT_SIZE, AUDIO_SAMPLE_RATE).T
    freqs = np.fft.rfftfreq(FFT_SIZE, 1 / AUDIO_SAMPLE_RATE)
    band = (freqs >= SPEECH_BAND_HZ[0]) & (freqs <= SPEECH_BAND_HZ[1])
    mel = np.empty((steps, N_MEL_BANDS))
    speech = np.empty(steps)
    # the spectra in blocks: all at once they would take ~50 kB per frame
    for first in range(0, steps, AUDIO_BLOCK_STEPS):
        block = slice(first, min(steps, first + AUDIO_BLOCK_STEPS))
        windows = all_windows[HOP_SAMPLES * np.arange(block.start, block.stop)]
        power = np.abs(np.fft.rfft(windows * hamming, FFT_SIZE)) ** 2 / FFT_SIZE
        mel[block] = power @ banks
        speech[block] = power[:, band].sum(axis=1)
    total = mel.sum(axis=1)
    loud = total[total > 0]
    floor = (np.median(loud) if len(loud) else 1.0) * ENERGY_FLOOR_RATIO
    log_mel = np.log(mel + floor / N_MEL_BANDS)
    flux = np.maximum(np.diff(log_mel, axis=0, prepend=log_mel[:1]), 0.0).sum(axis=1)
    mfcc = dct(log_mel, type=2, axis=1, norm="ortho")[:, :N_MFCC]
    columns = [mfcc.reshape(rows, -1), np.log(speech + floor).reshape(rows, -1), flux.reshape(rows, -1)]
    return np.concatenate(columns, axis=1).astype(np.float32)


def stack_context(features: np.ndarray, context: int) -> np.ndarray:
    """Row i → rows ``i-context … i+context`` side by side (edges repeated)."""
    if context == 0:
        return features
    n = len(features)
    padded = np.pad(features, ((context, context), (0, 0)), mode="edge")
    return np.concatenate([padded[j : j + n] for j in range(2 * context + 1)], axis=1)


def _standardize(x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance per column, statistics from ``rows`` only."""
    ref = x[rows]
    return ((x - ref.mean(axis=0)) / (ref.std(axis=0) + 1e-6)).astype(np.float32)


def heard_frames(audio: np.ndarray, n_frames: int) -> np.ndarray:
    """``(n_frames,)`` whether each frame has any sound at all.

    A frame of exact digital zeros is not a quiet room, whose noise floor never reads exactly 0: it is
    audio that is not there — a stream that starts late or ends early, a muted edit, the gap left by
    shifting a track. Paired with moving or closed lips it says nothing about sync, so it is scored
    like audio beyond the track's ends.
    """
    samples = np.asarray(audio).reshape(-1)[: n_frames * SAMPLES_PER_FRAME]
    heard = np.zeros(n_frames, dtype=bool)
    full = len(samples) // SAMPLES_PER_FRAME
    heard[:full] = np.any(samples[: full * SAMPLES_PER_FRAME].reshape(full, SAMPLES_PER_FRAME) != 0, axis=1)
    if full < n_frames and len(samples) > full * SAMPLES_PER_FRAME:
        heard[full] = np.any(samples[full * SAMPLES_PER_FRAME :] != 0)
    return heard


@dataclass
class TrackFeatures:
    """One track's standardised model inputs. Standardising per track removes the speaker (lip size,
    voice loudness) and keeps the movement."""

    audio: np.ndarray  # (n + 2*pad, 60); row r ↔ frame r - pad
    mouth: np.ndarray  # (n, d); zero rows where the mesh failed
    valid: np.ndarray  # (n,) mesh found
    pad: int
    heard: np.ndarray  # (n + 2*pad,) audio row has sound: False in the padding and on digital silence

    @classmethod
    def build(cls, mouth: np.ndarray, valid: np.ndarray, audio: np.ndarray, pad: int) -> TrackFeatures:
        n = len(mouth)
        audio_feats = audio_frame_features(audio, n, pad)
        real = np.zeros(len(audio_feats), dtype=bool)
        real[pad : pad + n] = True
        heard = np.zeros(len(audio_feats), dtype=bool)
        heard[pad : pad + n] = heard_frames(audio, n)
        return cls(_standardize(audio_feats, real), np.zeros(0, np.float32), valid, pad, heard).with_mouth(mouth, valid)

    def with_mouth(self, mouth: np.ndarray, valid: np.ndarray) -> TrackFeatures:
        """The same audio side with other visual features of the same frames (another kind of member)."""
        mouth_z = np.zeros(mouth.shape, dtype=np.float32)
        if valid.any():
            mouth_z[valid] = _standardize(mouth[valid].astype(np.float64), np.ones(int(valid.sum()), bool))
        return TrackFeatures(self.audio, mouth_z, valid, self.pad, self.heard)


# ----------------------------------------------------------------------------------------------------
# model 1: CCA


def fit_cca(audio_x: np.ndarray, mouth_y: np.ndarray, n_directions: int = 8, ridge: float = 1e-2) -> dict:
    """Regularised CCA of stacked frames; ``ridge`` adds that fraction of the mean variance to the
    covariances' diagonals. Returns the projections, the canonical correlations and the means."""
    mx, my = audio_x.mean(axis=0), mouth_y.mean(axis=0)
    x, y = audio_x - mx, mouth_y - my
    n = len(x)
    cxx, cyy, cxy = x.T @ x / n, y.T @ y / n, x.T @ y / n

    def inverse_sqrt(c):
        vals, vecs = np.linalg.eigh(c + ridge * np.trace(c) / len(c) * np.eye(len(c)))
        return (vecs / np.sqrt(vals)) @ vecs.T

    wx, wy = inverse_sqrt(cxx), inverse_sqrt(cyy)
    u, s, vt = np.linalg.svd(wx @ cxy @ wy)
    k = n_directions
    return {"audio_proj": wx @ u[:, :k], "mouth_proj": wy @ vt[:k].T, "rho": s[:k], "audio_mean": mx, "mouth_mean": my}


def cca_scores(cca: dict, feats: TrackFeatures, max_offset: int) -> np.ndarray:
    """``(n, shifts)`` products of the canonical variates, weighted by ρ/(1−ρ²) (the log-likelihood
    ratio weight of a correlated Gaussian pair at small correlations)."""
    u = (stack_context(feats.audio, CCA_AUDIO_CONTEXT) - cca["audio_mean"]) @ cca["audio_proj"]
    v = (feats.mouth - cca["mouth_mean"]) @ cca["mouth_proj"]
    rho = np.asarray(cca["rho"])
    weights = rho / (1 - rho**2)
    return _shifted_products(u, v * (weights / weights.sum()), feats.pad, max_offset, feats.heard)


# ----------------------------------------------------------------------------------------------------
# model 2: lip and sound embeddings


def _encoder(n_in: int, hidden: int, n_out: int, layers: int, kernel: int):
    import torch.nn as nn

    blocks = []
    for i in range(layers):
        blocks += [nn.Conv1d(n_in if i == 0 else hidden, hidden, kernel, padding=kernel // 2), nn.ReLU()]
        if i == 0:
            blocks.append(nn.Dropout(0.1))
    blocks.append(nn.Conv1d(hidden, n_out, 1))
    return nn.Sequential(*blocks)


def _make_net(n_audio: int, n_mouth: int, hidden: int = 128, embed: int = 64, layers: int = 3, kernel: int = 5):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class LipSyncNet(nn.Module):
        """Per-frame unit embeddings of sound and lips, ``(batch, frames, features) → (batch, frames, embed)``.

        Each encoder is a stack of temporal convolutions over the track (receptive field
        ``layers*(kernel-1)+1`` frames); matching frames should have a high cosine similarity.
        """

        def __init__(self):
            super().__init__()
            self.audio = _encoder(n_audio, hidden, embed, layers, kernel)
            self.mouth = _encoder(n_mouth, hidden, embed, layers, kernel)
            self.logit_scale = nn.Parameter(torch.tensor(10.0))

        def embed_audio(self, x):
            return F.normalize(self.audio(x.transpose(1, 2)).transpose(1, 2), dim=-1)

        def embed_mouth(self, y):
            return F.normalize(self.mouth(y.transpose(1, 2)).transpose(1, 2), dim=-1)

    return LipSyncNet()


@contextmanager
def _one_torch_thread():
    """These convolutions are tiny: on one thread they run several times faster than on two
    threads of a busy machine. The caller's setting is restored."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def net_scores(net, feats: TrackFeatures, max_offset: int) -> np.ndarray:
    """``(n, shifts)`` cosine similarities of lip and sound embeddings."""
    import torch

    with torch.no_grad(), _one_torch_thread():
        a = net.embed_audio(torch.from_numpy(feats.audio)[None])[0].numpy()
        v = net.embed_mouth(torch.from_numpy(feats.mouth)[None])[0].numpy()
    return _shifted_products(a, v, feats.pad, max_offset, feats.heard)


def train_net(tracks: list[TrackFeatures], steps: int = 5000, max_shift: int = 8, clip_frames: int = 31,
              batch: int = 32, lr: float = 2e-3, seed: int = 0, log=print):
    """Train :class:`LipSyncNet` on in-sync tracks (``pad`` 0): for random windows of 5, 9 or all
    central frames, the mean similarity at each shift within ±``max_shift`` is a logit and the true
    shift (0) the class."""
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    tracks = [t for t in tracks if len(t.mouth) >= 2 * max_shift + WINDOW_FRAMES]
    net = _make_net(tracks[0].audio.shape[1], tracks[0].mouth.shape[1])
    with _one_torch_thread():
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


# ----------------------------------------------------------------------------------------------------
# from per-frame scores to the distance matrix


def _shifted_products(audio_vecs: np.ndarray, mouth_vecs: np.ndarray, pad: int, max_offset: int,
                      heard: np.ndarray) -> np.ndarray:
    """``out[i, k] = <mouth_vecs[i], audio_vecs[i - offset + pad]>`` with offset = max_offset − k.

    Pairs whose audio row is not ``heard`` — beyond the track (the padding) or digital silence — are NaN.
    """
    n = len(mouth_vecs)
    if pad < max_offset:
        raise ValueError(f"audio features padded by {pad} frames cannot cover offsets of ±{max_offset}")
    frames = np.arange(n)
    out = np.empty((n, 2 * max_offset + 1))
    for k in range(2 * max_offset + 1):
        rows = frames - (max_offset - k) + pad
        out[:, k] = np.einsum("ij,ij->i", mouth_vecs, audio_vecs[rows])
        out[~heard[rows], k] = np.nan
    return out


def combine_scores(scores: list[np.ndarray], valid: np.ndarray) -> np.ndarray:
    """Centre and scale each model's scores over the track's real pairs, average them; pairs without
    a mesh or beyond the audio become 0, a typical pair."""
    combined = np.zeros_like(scores[0])
    for s in scores:
        real = s[valid]
        real = real[np.isfinite(real)]
        combined += np.nan_to_num((s - real.mean()) / (real.std() + 1e-9)) if len(real) else 0.0
    combined /= len(scores)
    combined[~valid] = 0.0
    return combined


def window_distances(frame_scores: np.ndarray) -> np.ndarray:
    """``(n, shifts)`` per-frame scores → ``(n - 4, shifts)`` distances: minus the 5-frame window mean."""
    cumulative = np.concatenate([np.zeros((1, frame_scores.shape[1])), np.cumsum(frame_scores, axis=0)])
    return -(cumulative[WINDOW_FRAMES:] - cumulative[:-WINDOW_FRAMES]) / WINDOW_FRAMES


# ----------------------------------------------------------------------------------------------------
# stored models and calibration


# What the models see of the face: the lip contour from the mesh, or that plus the mouth image's
# low spatial frequencies (:func:`syncnet_fcn.mouth.mouth_appearance`).
VISUAL_LIPS = "lips"
VISUAL_LIPS_APPEARANCE = "lips+appearance"


def visual_features(landmarks: np.ndarray, mouth_images: np.ndarray | None, kind: str,
                    appearance: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(features (n, d), mesh found (n,))`` of one track for models trained on ``kind``.

    Models that use the mouth image take its features from ``appearance`` when given (computed as the
    frames arrived, :func:`~syncnet_fcn.mouth.mouth_appearance`), else from ``mouth_images``.
    """
    from ..mouth import mouth_appearance, mouth_features

    lips, valid = mouth_features(landmarks)
    if kind == VISUAL_LIPS:
        return lips, valid
    if appearance is None:
        if mouth_images is None or len(mouth_images) != len(landmarks):
            raise InvalidArgumentError("these landmark models need the mouth image of every frame (FaceMeshTracker.process_with_mouth)")
        appearance = mouth_appearance(mouth_images, valid)
    return np.concatenate([lips, appearance], axis=1), valid


@dataclass
class LandmarkModel:
    """One CCA and one :class:`LipSyncNet`, fitted on one kind of visual features."""

    cca: dict
    net: object
    visual: str = VISUAL_LIPS

    def to_state(self) -> dict:
        import torch

        return {
            "visual": self.visual,
            "cca": {k: torch.as_tensor(np.asarray(v, dtype=np.float32)) for k, v in self.cca.items()},
            "net": {k: v.half() for k, v in self.net.state_dict().items()},
            "net_shape": [int(self.net.audio[0].in_channels), int(self.net.mouth[0].in_channels)],
        }

    @classmethod
    def from_state(cls, state: dict) -> LandmarkModel:
        net = _make_net(*state["net_shape"])
        net.load_state_dict({k: v.float() for k, v in state["net"].items()})
        net.eval()
        return cls({k: v.double().numpy() for k, v in state["cca"].items()}, net, state["visual"])


@dataclass
class LandmarkModels:
    """The engine's stored models: members whose per-frame scores are averaged (:func:`combine_scores`)."""

    members: list[LandmarkModel]
    provenance: dict

    FORMAT = "syncnet_fcn landmark v2"

    def save(self, path: Path = MODEL_PATH) -> None:
        import torch

        state = {"format": self.FORMAT, "members": [m.to_state() for m in self.members],
                 "provenance": json.dumps(self.provenance)}
        torch.save(state, path)

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> LandmarkModels:
        import torch

        data = torch.load(path, map_location="cpu", weights_only=True)
        if data.get("format") != cls.FORMAT:
            raise EngineUnavailableError(f"{path} is not a {cls.FORMAT} file (format {data.get('format')!r})")
        return cls([LandmarkModel.from_state(m) for m in data["members"]], json.loads(data["provenance"]))


@lru_cache(maxsize=1)
def load_models() -> LandmarkModels:
    return LandmarkModels.load(MODEL_PATH)


DEFAULT_CALIBRATION = {"bias_frames": 0.0, "reliable_confidence": 4.0, "speaking_threshold": 0.2}


def load_calibration() -> dict:
    """``{"bias_frames", "reliable_confidence", "speaking_threshold", ...}``; defaults when absent."""
    calibration = dict(DEFAULT_CALIBRATION)
    if CALIBRATION_PATH.exists():
        calibration.update(json.loads(CALIBRATION_PATH.read_text()))
    return calibration


def landmark_available() -> tuple[bool, str]:
    """Whether mediapipe's face mesh and this engine's stored models are present."""
    try:
        import mediapipe as mp
    except ImportError as exc:
        return False, f"mediapipe is not installed ({exc})"
    mesh_model = Path(mp.__file__).parent / "modules" / "face_landmark" / "face_landmark.tflite"
    if not mesh_model.exists():
        return False, f"mediapipe's face-landmark model is missing ({mesh_model})"
    if not hasattr(getattr(mp, "solutions", None), "face_mesh"):
        return False, "this mediapipe build has no face_mesh solution"
    if not MODEL_PATH.exists():
        return False, f"the landmark engine's model file is missing ({MODEL_PATH})"
    return True, "mediapipe face mesh (bundled) + stored lip–sound models"


# ----------------------------------------------------------------------------------------------------
# one track


def frame_scores(landmarks: np.ndarray, audio: np.ndarray, max_offset: int, models: LandmarkModels,
                 bias_frames: float = 0.0, mouth_images: np.ndarray | None = None,
                 appearance: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(scores (n, shifts), mesh found (n,))`` for one track, audio delayed by ``bias_frames``."""
    from ..media import shift_audio

    if bias_frames:
        # lips lead sound by a roughly constant amount: delay the audio by it so in-sync reads 0
        audio = shift_audio(np.asarray(audio), float(bias_frames))
    scores, features = [], {}
    for member in models.members:
        if member.visual not in features:
            mouth, valid = visual_features(landmarks, mouth_images, member.visual, appearance)
            if features:  # the audio side is the same for every kind of member: computed once
                features[member.visual] = next(iter(features.values())).with_mouth(mouth, valid)
            else:
                features[member.visual] = TrackFeatures.build(mouth, valid, audio, pad=max_offset)
        feats = features[member.visual]
        scores += [cca_scores(member.cca, feats, max_offset), net_scores(member.net, feats, max_offset)]
    return combine_scores(scores, feats.valid), feats.valid


def score_track(landmarks: np.ndarray, audio: np.ndarray, max_offset: int = 15,
                models: LandmarkModels | None = None, calibration: dict | None = None,
                mouth_images: np.ndarray | None = None, appearance: np.ndarray | None = None) -> TrackSync:
    """The reading of one track from its face-mesh landmarks ``(n, 468, 3)`` (or compact,
    :func:`~syncnet_fcn.mouth.compact_landmarks`), the mouth images ``(n, *MOUTH_ROI_SHAPE)`` that
    :meth:`~syncnet_fcn.mouth.FaceMeshTracker.process_with_mouth` cut beside them or their
    ``appearance`` features (needed by models that use the mouth image) and its audio."""
    from ..scoring import summarize

    models = models or load_models()
    calibration = calibration or load_calibration()
    n = len(landmarks)
    if n < MIN_TRACK_FRAMES:
        raise InvalidArgumentError(f"the landmark engine needs at least {MIN_TRACK_FRAMES} frames, got {n}")
    mesh_frames, missing = _evidence(landmarks, audio)
    if missing:
        return _no_reading(n, max_offset, missing)
    scores = piecewise_frame_scores(landmarks, audio, max_offset, models, calibration["bias_frames"],
                                    mouth_images, appearance)
    sync = summarize(window_distances(scores), max_offset, n_frames=n)
    sync.per_frame_confidence = local_confidence(sync.dists, n, offset_index=max_offset - sync.offset_frames)
    # The curve is a mean of per-frame scores of unit spread: its best-vs-typical gap shrinks like
    # 1/sqrt(frames) for unrelated sound. Scaled by sqrt(frames), the gap means the same for a word
    # and for a speech: about how many standard errors the best offset beats a typical one.
    gap = sync.confidence
    sync.confidence = float(gap * np.sqrt(mesh_frames))
    threshold = float(calibration["reliable_confidence"])
    sync.extra = {"mesh_frames": mesh_frames, "curve_gap": float(gap), "reliable_confidence": threshold}
    if not np.isfinite(sync.confidence) or sync.confidence < threshold:
        sync.reliable = False
        sync.note = (
            f"no reliable sync: lips and sound agree too little (confidence {sync.confidence:.3f} < "
            f"{threshold:.3f}); this face is not speaking, or the voice is not its own"
        )
    return sync


# A track is scored in pieces of at most this many frames (5 minutes). Scoring holds about 10 kB per frame
# while it runs, so a presenter's track through a 5-hour stream (450,000 frames) in one piece would need
# several GB; in pieces the cost stays that of 5 minutes. Each piece's model scores are standardised on
# the piece itself, which also follows slow changes of light and pose. Every clip the engine was
# calibrated on is shorter than a piece, so for them nothing changes.
SCORING_PIECE_FRAMES = 7500


def piecewise_frame_scores(landmarks: np.ndarray, audio: np.ndarray, max_offset: int, models: LandmarkModels,
                           bias_frames: float = 0.0, mouth_images: np.ndarray | None = None,
                           appearance: np.ndarray | None = None) -> np.ndarray:
    """:func:`frame_scores` of a track of any length, in pieces of at most :data:`SCORING_PIECE_FRAMES`
    frames of about equal length. A piece with too little face mesh or sound scores 0 (typical) throughout."""
    n = len(landmarks)
    pieces = max(1, -(-n // SCORING_PIECE_FRAMES))
    audio = np.asarray(audio)
    scores = np.zeros((n, 2 * max_offset + 1))
    for frames in np.array_split(np.arange(n), pieces):
        first, stop = int(frames[0]), int(frames[-1]) + 1
        piece_audio = audio[first * SAMPLES_PER_FRAME : stop * SAMPLES_PER_FRAME]
        if _evidence(landmarks[first:stop], piece_audio)[1]:
            continue
        scores[first:stop] = frame_scores(
            landmarks[first:stop], piece_audio, max_offset, models, bias_frames,
            None if mouth_images is None else mouth_images[first:stop],
            None if appearance is None else appearance[first:stop],
        )[0]
    return scores


# Frames of distance windows judged together for "is this face the voice heard now": about a second,
# long enough to stand out of noise, short enough to follow turns in a conversation.
LOCAL_WINDOWS = 21


def local_confidence(dists: np.ndarray, n_frames: int, offset_index: int, windows: int = LOCAL_WINDOWS) -> np.ndarray:
    """Per-frame confidence from the ~1 s around each frame: how far the track's offset (column
    ``offset_index`` of ``dists``, or a neighbour) beats a typical one there. Judged at the track's
    offset rather than at a best one found locally: on a second of someone else's voice the best of
    31 offsets beats the median by chance too."""
    windows = max(1, min(windows, len(dists)))
    cumulative = np.concatenate([np.zeros((1, dists.shape[1])), np.cumsum(dists, axis=0)])
    local = (cumulative[windows:] - cumulative[:-windows]) / windows
    near = local[:, max(0, offset_index - 1) : offset_index + 2]
    gain = np.median(local, axis=1) - near.min(axis=1)
    # position p covers windows p … p+windows-1, i.e. frames p … p+windows+3: centred on p + (windows+3)//2
    centres = np.clip(np.arange(n_frames) - (windows + 3) // 2, 0, len(gain) - 1)
    return (gain[centres] * np.sqrt(windows)).astype(np.float32)


def _evidence(landmarks: np.ndarray, audio: np.ndarray) -> tuple[int, str | None]:
    """``(frames with a face mesh, why nothing can be read or None)`` for a track or a piece of one:
    fewer than :data:`MIN_MESH_FRAMES` frames with a mesh, or with sound, say nothing about sync."""
    n = len(landmarks)
    mesh_frames = int(np.isfinite(landmarks).all(axis=(1, 2)).sum())
    if n < MIN_MESH_FRAMES:
        return mesh_frames, (f"the face is seen for only {n} frames ({n / 25:.2f} s); reading sync needs "
                             f"at least {MIN_MESH_FRAMES}")
    if mesh_frames < MIN_MESH_FRAMES:
        return mesh_frames, f"the face mesh found this face on only {mesh_frames} of {n} frames"
    heard = int(heard_frames(audio, n).sum())
    if heard < MIN_MESH_FRAMES:
        return mesh_frames, f"the audio is digital silence on {n - heard} of this track's {n} frames"
    return mesh_frames, None


def _no_reading(n_frames: int, max_offset: int, reason: str) -> TrackSync:
    from ..scoring import offset_axis

    shifts = 2 * max_offset + 1
    return TrackSync(
        offset_frames=0,
        confidence=0.0,
        min_dist=None,
        per_frame_confidence=np.zeros(n_frames, dtype=np.float32),
        offsets=offset_axis(max_offset),
        offset_curve=np.zeros(shifts),
        reliable=False,
        note=f"no reliable sync: {reason}",
        dists=np.zeros((n_frames - WINDOW_FRAMES + 1, shifts)),
    )


# ----------------------------------------------------------------------------------------------------
# calibration


def measure_bias_error(landmarks: np.ndarray, audio: np.ndarray, own_offset: int, max_offset: int = 15,
                       models: LandmarkModels | None = None, mouth_images: np.ndarray | None = None) -> float:
    """Sub-frame reading minus the true offset of one in-sync track, before any bias correction."""
    from ..evaluation import subframe_minimum
    from ..scoring import offset_axis

    scores, _ = frame_scores(landmarks, audio, max_offset, models or load_models(), 0.0, mouth_images)
    curve = window_distances(scores).mean(axis=0)[::-1]  # offsets ascending
    return subframe_minimum(curve, offset_axis(max_offset)) - own_offset


def calibrate(samples: dict, max_offset: int = 15, models: LandmarkModels | None = None) -> dict:
    """Measure the lip lead and the reliability threshold.

    ``samples`` maps clip name → ``(landmarks, mouth images, track audio, own offset or None)`` of real
    clips. The
    bias is the robust median of (sub-frame reading − own offset) over clips with a known own offset,
    checked by leaving each corpus out. The threshold is the largest confidence seen when a face is
    paired with another clip's audio (every clip's face with the audio of the next clip of another
    corpus, repeated or cut to length), so that such pairs read unreliable; the true pairs'
    confidences are stored beside it.
    """
    from ..evaluation import (
        IN_SYNC_CORPORA,
        corpus_of,
        foreign_audio,
        leave_one_corpus_out,
        robust_bias,
        wrong_audio_partner,
        wrong_pair_thresholds,
    )

    models = models or load_models()
    # evidence: clips whose own offset is documented or that come from a research corpus in sync
    errors = {
        name: measure_bias_error(lm, audio, own, max_offset, models, images)
        for name, (lm, images, audio, own) in samples.items()
        if own is not None and (corpus_of(name) in IN_SYNC_CORPORA or corpus_of(name) == "syncnet_example")
    }
    loco = leave_one_corpus_out(errors)
    bias = robust_bias(list(errors.values()))
    base = {"bias_frames": bias, "reliable_confidence": -np.inf}
    names = sorted(samples)
    true_conf, wrong_conf, wrong_frames = {}, {}, []
    for i, name in enumerate(names):
        lm, images, audio, _ = samples[name]
        true_conf[name] = float(score_track(lm, audio, max_offset, models, base, images).confidence)
        # the next clip of another corpus (syncnetfcn_test_offset* is syncnet_example, audio delayed)
        other = names[wrong_audio_partner(names, i)]
        foreign = foreign_audio(samples[other][2], len(audio))
        wrong = score_track(lm, foreign, max_offset, models, base, images)
        wrong_conf[f"{name} + audio of {other}"] = float(wrong.confidence)
        wrong_frames.append(wrong.per_frame_confidence)
    thresholds = wrong_pair_thresholds(true_conf, wrong_conf, wrong_frames)
    return {
        "bias_frames": bias,
        "reliable_confidence": thresholds["reliable_confidence"],
        "speaking_threshold": thresholds["speaking_threshold"],
        "relative_speaking_threshold": thresholds["relative_speaking_threshold"],
        "bias_measurement": {
            "how": "sub-frame minimum of the offset curve (parabola through the best offset and its "
                   "neighbours) minus the clip's own offset, on unshifted real clips with a known own "
                   "offset; bias = median after dropping errors more than 3 frames from the median",
            "errors": errors,
            "leave_one_corpus_out": loco,
        },
        "threshold_measurement": {
            "how": "confidence of each clip's face with the audio of the next clip (by name) of another "
                   "corpus (repeated or cut to the "
                   "track's length); reliable_confidence = the largest; speaking_threshold = 95th "
                   "percentile of those pairs' per-frame confidences; relative_speaking_threshold = their "
                   "median",
            "wrong_audio": wrong_conf,
            "true_audio": true_conf,
            "true_pairs_above_threshold": thresholds["true_pairs_above_threshold"],
        },
    }


# ----------------------------------------------------------------------------------------------------
# engine


class _LandmarkCollector:
    """Face mesh on a track's crops as they arrive; the audio side waits for :meth:`landmarks`.

    The mesh is the engine's main cost and mediapipe runs it without holding the GIL, so chunks go
    to one mesh instance per core in turn (chunk k to instance k mod workers; at most one chunk per
    instance in flight, so each instance still sees its chunks in order). The mouth images are cut
    afterwards, in frame order, with one :class:`~syncnet_fcn.mouth.MouthRegion` for the whole track.
    Of each chunk only what the scoring reads is kept — the mesh's feature points and the mouth image's
    low frequencies, about 1 kB a frame instead of 7 — so that a track hours long fits in memory.
    """

    def __init__(self, n_frames: int, workers: int | None = None):
        from collections import deque
        from concurrent.futures import ThreadPoolExecutor

        from ..mouth import FaceMeshTracker, MouthRegion

        self.n_frames = n_frames
        workers = workers or min(2, os.cpu_count() or 1)
        self._meshes = [FaceMeshTracker() for _ in range(workers)]
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="face-mesh")
        self._pending: deque = deque()  # (future landmarks, crops), oldest first
        self._region = MouthRegion()
        self._landmarks: list[np.ndarray] = []
        self._appearance: list[np.ndarray] = []
        self._pushed = 0

    def push(self, crops: np.ndarray) -> None:
        while len(self._pending) >= len(self._meshes):
            self._collect_oldest()
        mesh = self._meshes[self._pushed % len(self._meshes)]
        self._pending.append((self._pool.submit(mesh.process, crops), crops))
        self._pushed += 1

    def _collect_oldest(self) -> None:
        from ..mouth import compact_landmarks, mouth_appearance

        future, crops = self._pending.popleft()
        landmarks = future.result()
        found = np.isfinite(landmarks).all(axis=(1, 2))
        self._landmarks.append(compact_landmarks(landmarks))
        self._appearance.append(mouth_appearance(self._region.extract_all(crops, landmarks), found))

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        for mesh in self._meshes:
            mesh.close()
        self._meshes = []

    def landmarks(self) -> tuple[np.ndarray, np.ndarray]:
        """``(compact landmarks (n, points, 3), mouth appearance (n, coefficients))``."""
        from ..mouth import APPEARANCE_DCT_BLOCK, FEATURE_POINTS

        try:
            while self._pending:
                self._collect_oldest()
        finally:
            self.close()
        if not self._landmarks:
            rows, cols = APPEARANCE_DCT_BLOCK
            return np.zeros((0, len(FEATURE_POINTS), 3), np.float32), np.zeros((0, rows * cols - 1), np.float32)
        landmarks = np.concatenate(self._landmarks)
        if len(landmarks) != self.n_frames:
            raise ValueError(f"track announced {self.n_frames} frames, got {len(landmarks)} crops")
        return landmarks, np.concatenate(self._appearance)


class LandmarkTrackScorer(TrackScorer):
    def __init__(self, audio: np.ndarray, n_frames: int, max_offset: int, engine: LandmarkEngine):
        self.audio = np.asarray(audio)
        self.max_offset = max_offset
        self.engine = engine
        self._collector = _LandmarkCollector(n_frames)

    def push(self, crops: np.ndarray) -> None:
        self._collector.push(crops)

    def finish(self) -> TrackSync:
        landmarks, appearance = self._collector.landmarks()
        return score_track(landmarks, self.audio, self.max_offset, self.engine.models, self.engine.calibration,
                           appearance=appearance)


class MultiAudioScorer:
    """One track read against several audios (e.g. shifted copies): the face mesh runs once."""

    def __init__(self, audios, n_frames: int, max_offset: int, engine: LandmarkEngine):
        self.audios = [np.asarray(a) for a in audios]
        self.max_offset = max_offset
        self.engine = engine
        self._collector = _LandmarkCollector(n_frames)

    def push(self, crops: np.ndarray) -> None:
        self._collector.push(crops)

    def finish(self) -> list[TrackSync]:
        landmarks, appearance = self._collector.landmarks()
        e = self.engine
        return [score_track(landmarks, a, self.max_offset, e.models, e.calibration, appearance=appearance)
                for a in self.audios]


class LandmarkEngine(SyncEngine):
    """Lip landmarks (mediapipe face mesh) against speech features; no downloaded weights."""

    name = "landmark"
    weights = "mediapipe face mesh + embedded lip–sound models"

    def __init__(self, models: LandmarkModels | None = None, calibration: dict | None = None):
        ok, reason = landmark_available()
        if not ok:
            raise EngineUnavailableError(f"landmark engine unavailable: {reason}")
        self.models = models or load_models()
        self.calibration = calibration or load_calibration()

    @property
    def speaking_threshold(self) -> float:
        """Per-frame confidence above which the face counts as the voice heard."""
        return float(self.calibration["speaking_threshold"])

    @property
    def relative_speaking_threshold(self) -> float | None:
        """The bar for the best-matching of several faces on screen (median wrong-pair per-frame confidence)."""
        value = self.calibration.get("relative_speaking_threshold")
        return None if value is None else float(value)

    def _per_frame_confidence(self, dists: np.ndarray, column: int, n_frames: int) -> np.ndarray:
        return local_confidence(dists, n_frames, offset_index=column)

    def _check(self, n_frames: int) -> None:
        if n_frames < MIN_TRACK_FRAMES:
            raise InvalidArgumentError(f"the landmark engine needs at least {MIN_TRACK_FRAMES} frames, got {n_frames}")

    def start_track(self, audio: np.ndarray, n_frames: int, max_offset: int = 15) -> TrackScorer:
        self._check(n_frames)
        return LandmarkTrackScorer(audio, n_frames, max_offset, self)

    def start_tracks_multi_audio(self, audios, n_frames: int, max_offset: int = 15) -> MultiAudioScorer:
        """Like :meth:`start_track` for several audios of one track; ``finish()`` returns one reading each."""
        self._check(n_frames)
        return MultiAudioScorer(audios, n_frames, max_offset, self)


# ----------------------------------------------------------------------------------------------------
# building the stored files: python -m syncnet_fcn.engines.landmark fit | calibrate


def track_landmarks(video, whole_frame: bool = False, face_tracks=None) -> list[dict]:
    """``[{"landmarks", "mouth_images", "audio", "start"}]`` for the face tracks of ``video``.

    ``whole_frame`` treats every frame as the face crop (for training footage that is cropped
    already), skipping detection and tracking; ``face_tracks`` are tracks found already (a pipeline's),
    so that they are not searched for again.
    """
    import cv2

    from ..crops import iter_track_crops
    from ..media import iter_frames, load_audio, track_audio
    from ..mouth import FaceMeshTracker

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
    # each net trains on one thread (see _one_torch_thread): one process per core. Spawned, not
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
    net = _make_net(features[0].audio.shape[1], features[0].mouth.shape[1])
    net.load_state_dict(state)
    return net.eval()


def calibration_samples(clips_dir: Path, cache: Path | None = None, log=print) -> dict:
    """``{clip: (landmarks, mouth images, audio, own offset)}`` of the real clips of a ``manifest.json``
    folder (longest face track of each)."""
    from ..errors import SyncNetError
    from ..evaluation import own_offset

    manifest = json.loads((clips_dir / "manifest.json").read_text())
    samples = {}
    for entry in manifest:
        path = clips_dir / entry["file"]
        if entry.get("real_or_generated") != "real" or not path.exists():
            continue
        try:
            tracks = cached_tracks(path, cache, whole_frame=False)
        except SyncNetError as exc:
            log(f"{entry['file']}: {exc.message}")
            continue
        tracks = [t for t in tracks if len(t["landmarks"]) >= MIN_TRACK_FRAMES]
        if tracks:
            t = max(tracks, key=lambda t: len(t["landmarks"]))
            samples[entry["file"]] = (t["landmarks"], t["mouth_images"], t["audio"], own_offset(entry["file"]))
    return samples


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m syncnet_fcn.engines.landmark", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_fit = sub.add_parser("fit", help=f"fit the models on in-sync talking faces → {MODEL_PATH.name}")
    p_fit.add_argument("folders", nargs="*", type=Path, help="folders of face-crop training videos")
    p_fit.add_argument("--tracked", nargs="*", type=Path, default=[],
                       help="folders of full-frame videos whose faces are detected and tracked (the other "
                            "folders' frames are face crops already)")
    p_fit.add_argument("--steps", type=int, default=5000)
    p_fit.add_argument("--cache", type=Path, default=None, help="keep landmarks here between runs")
    p_cal = sub.add_parser("calibrate", help=f"measure bias and threshold on real clips → {CALIBRATION_PATH.name}")
    p_cal.add_argument("clips_dir", type=Path, help="folder with manifest.json (../shared/clips)")
    p_cal.add_argument("--cache", type=Path, default=None)
    args = parser.parse_args(argv)

    if args.command == "fit":
        from ..media import videos_in

        videos = sorted(v for folder in args.folders for v in videos_in(folder))
        tracked = sorted(v for folder in args.tracked for v in videos_in(folder))
        models = fit(videos, tracked, args.cache, steps=args.steps)
        models.save(MODEL_PATH)
        print(f"wrote {MODEL_PATH}: {models.provenance}")
    else:
        samples = calibration_samples(args.clips_dir, args.cache)
        calibration = calibrate(samples)
        calibration["measured_on"] = f"{len(samples)} real clips of {args.clips_dir.name}/manifest.json"
        CALIBRATION_PATH.write_text(json.dumps(calibration, indent=1) + "\n")
        print(f"wrote {CALIBRATION_PATH}: bias {calibration['bias_frames']:+.3f} frames, "
              f"reliable_confidence {calibration['reliable_confidence']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
