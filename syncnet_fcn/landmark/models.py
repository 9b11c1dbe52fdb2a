"""The landmark engine's stored models and what scores a track with them.

Two audio–lip models, each fitted per member on one kind of visual features:

* a canonical correlation model (CCA, :func:`fit_cca`): the directions in which lips and ±2 frames of
  sound co-vary linearly; the score is the product of the two projections (:func:`cca_scores`);
* ``LipSyncNet`` (:func:`make_net`), two small temporal convolution encoders trained so that the
  cosine similarity of lip and sound embeddings peaks at the true alignment (:func:`net_scores`).

:class:`LandmarkModels` is the stored ensemble (``data/landmark_model.pt``); the calibration beside it
(``data/landmark_calibration.json``) is read by :func:`load_calibration` and written by
:mod:`syncnet_fcn.landmark_training` (on training speakers, never the evaluation clips).
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..errors import EngineUnavailableError
from .features import VISUAL_LIPS, TrackFeatures, stack_context

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
MODEL_PATH = DATA_DIR / "landmark_model.pt"
CALIBRATION_PATH = DATA_DIR / "landmark_calibration.json"
# Frames of audio context either side of a frame for the CCA.
CCA_AUDIO_CONTEXT = 2


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
    return shifted_products(u, v * (weights / weights.sum()), feats.pad, max_offset, feats.heard)


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


def make_net(n_audio: int, n_mouth: int, hidden: int = 128, embed: int = 64, layers: int = 3, kernel: int = 5):
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
def one_torch_thread():
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

    with torch.no_grad(), one_torch_thread():
        a = net.embed_audio(torch.from_numpy(feats.audio)[None])[0].numpy()
        v = net.embed_mouth(torch.from_numpy(feats.mouth)[None])[0].numpy()
    return shifted_products(a, v, feats.pad, max_offset, feats.heard)



def shifted_products(audio_vecs: np.ndarray, mouth_vecs: np.ndarray, pad: int, max_offset: int,
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



# ----------------------------------------------------------------------------------------------------
# stored models and calibration


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
        net = make_net(*state["net_shape"])
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

