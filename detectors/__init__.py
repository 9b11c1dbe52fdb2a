"""Face detectors behind one small interface.

A detector takes a BGR ``uint8`` frame and returns face boxes in that frame's pixels. Boxes follow the
geometry of the S3FD boxes the original SyncNet pipeline used (forehead to chin, a little wider than
the face), so that the original crop geometry (:mod:`syncnet_fcn.crops`) gives comparable crops
whatever the detector. Add a detector by writing a module with a ``create(**options)`` function and
listing it in ``_DETECTORS``.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


@dataclass
class Detection:
    box: np.ndarray  # float32 [x1, y1, x2, y2] in pixels of the frame given to detect()
    score: float

    def __post_init__(self):
        self.box = np.asarray(self.box, dtype=np.float32).reshape(4)
        self.score = float(self.score)


@runtime_checkable
class FaceDetector(Protocol):
    name: str

    def detect(self, frame_bgr: np.ndarray) -> list[Detection]: ...


# name -> module under detectors/ providing create(**options)
_DETECTORS = {"mediapipe": "detectors.mediapipe_face"}


def create_detector(name: str = "mediapipe", **options) -> FaceDetector:
    """Build detector ``name`` with its options (e.g. ``min_confidence=0.5``)."""
    from syncnet_fcn.errors import InvalidArgumentError

    if name not in _DETECTORS:
        raise InvalidArgumentError(f"unknown face detector {name!r}: choose one of {', '.join(_DETECTORS)}")
    module = importlib.import_module(_DETECTORS[name])
    return module.create(**options)


def available_detectors() -> list[str]:
    """Names of the detectors whose dependencies import here."""
    names = []
    for name, module_name in _DETECTORS.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        if getattr(module, "available", lambda: True)():
            names.append(name)
    return names


__all__ = ["Detection", "FaceDetector", "create_detector", "available_detectors"]
