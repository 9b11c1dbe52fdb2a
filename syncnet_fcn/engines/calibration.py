"""The calibration and thresholds files stored beside SyncNet weights, as the engines read them.

``<weights>.fcn-calibration.json`` (:class:`FCNCalibration`: a refitted audio head and an affine
distance map, applied by the ``fcn`` engine) and ``<weights>.thresholds.json`` (reliability and
speaking thresholds measured for these weights). They are fitted and written by
:mod:`syncnet_fcn.calibrate`, which runs the engines: reading them here keeps the engines free of it.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import WeightsError

CALIBRATION_SUFFIX = ".fcn-calibration.json"
FORMAT_VERSION = 1


def calibration_path(weights_path: str | os.PathLike) -> Path:
    weights_path = Path(weights_path)
    return weights_path.with_name(weights_path.name + CALIBRATION_SUFFIX)


def _encode(array: np.ndarray) -> dict:
    array = np.ascontiguousarray(array, dtype="<f4")
    return {"shape": list(array.shape), "dtype": "float32", "base64": base64.b64encode(array.tobytes()).decode()}


def _decode(blob: dict) -> np.ndarray:
    data = np.frombuffer(base64.b64decode(blob["base64"]), dtype="<f4")
    return data.reshape(blob["shape"]).copy()


@dataclass
class FCNCalibration:
    """What the FCN engine applies: a refitted audio head and an affine distance map."""

    head_weight: np.ndarray | None = None  # (D, w6)
    head_bias: np.ndarray | None = None  # (D,)
    distance_scale: float = 1.0
    distance_shift: float = 0.0
    provenance: dict = field(default_factory=dict)

    def audio_head(self, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor] | None:
        if self.head_weight is None:
            return None
        return torch.from_numpy(self.head_weight).to(device), torch.from_numpy(self.head_bias).to(device)

    def apply_to_distances(self, dists: np.ndarray) -> np.ndarray:
        return self.distance_scale * np.asarray(dists, dtype=np.float64) + self.distance_shift

    def to_dict(self) -> dict:
        data = {
            "format": FORMAT_VERSION,
            "kind": "syncnet_fcn.fcn_calibration",
            "provenance": self.provenance,
            "distance_map": {"scale": self.distance_scale, "shift": self.distance_shift},
        }
        if self.head_weight is not None:
            data["audio_head"] = {"weight": _encode(self.head_weight), "bias": _encode(self.head_bias)}
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "FCNCalibration":
        if data.get("format") != FORMAT_VERSION or data.get("kind") != "syncnet_fcn.fcn_calibration":
            raise ValueError("not a syncnet_fcn FCN calibration (format/kind fields)")
        head = data.get("audio_head")
        return cls(
            head_weight=_decode(head["weight"]) if head else None,
            head_bias=_decode(head["bias"]) if head else None,
            distance_scale=float(data["distance_map"]["scale"]),
            distance_shift=float(data["distance_map"]["shift"]),
            provenance=data.get("provenance", {}),
        )


def save_calibration(calibration: FCNCalibration, path: str | os.PathLike) -> Path:
    path = Path(path)
    partial = path.with_name(path.name + ".part")
    partial.write_text(json.dumps(calibration.to_dict(), indent=1))
    os.replace(partial, path)
    return path


def load_calibration(weights_path: str | os.PathLike, model=None) -> tuple[FCNCalibration | None, str]:
    """The calibration beside ``weights_path`` and a note for the report.

    ``(None, reason)`` when there is none or it was fitted for other weights; a corrupt file is a
    :class:`WeightsError` (it would silently change every reading).
    """
    from ..weights import sha256_file

    path = calibration_path(weights_path)
    if not path.is_file():
        return None, f"none (no {path.name} beside the weights; run `syncnet-fcn calibrate`)"
    try:
        calibration = FCNCalibration.from_dict(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError) as exc:
        raise WeightsError(f"FCN calibration {path} is unreadable ({exc}); delete it or run `syncnet-fcn calibrate`") from exc
    fitted_for = calibration.provenance.get("weights_sha256")
    if fitted_for and fitted_for != sha256_file(weights_path):
        return None, f"ignored: {path.name} was fitted for other weights (sha256 {fitted_for[:12]}…)"
    if model is not None and calibration.head_weight is not None:
        last = model.netfcaud[3]
        if tuple(calibration.head_weight.shape) != tuple(last.weight.shape):
            return None, f"ignored: {path.name} has an audio head of another shape"
    return calibration, f"applied: {path}"


# reliability thresholds --------------------------------------------------------------------------------

THRESHOLDS_SUFFIX = ".thresholds.json"


def thresholds_path(weights_path: str | os.PathLike) -> Path:
    weights_path = Path(weights_path)
    return weights_path.with_name(weights_path.name + THRESHOLDS_SUFFIX)


def load_thresholds(weights_path: str | os.PathLike, engine: str) -> dict:
    """``{"reliable_confidence", "speaking_threshold", "relative_speaking_threshold"}`` (those present)
    measured for these weights and this engine
    (``syncnet-fcn thresholds``), or ``{}``: confidences live on each network's own scale, so a
    threshold is only known for weights it was measured on."""
    from ..weights import sha256_file

    path = thresholds_path(weights_path)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
        measured = data["engines"].get(engine, {})
        if data.get("weights_sha256") not in (None, sha256_file(weights_path)):
            return {}  # measured for other weights
        keys = ("reliable_confidence", "speaking_threshold", "relative_speaking_threshold")
        return {k: float(measured[k]) for k in keys if k in measured}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise WeightsError(f"thresholds file {path} is unreadable ({exc}); delete it or run `syncnet-fcn thresholds`") from exc
