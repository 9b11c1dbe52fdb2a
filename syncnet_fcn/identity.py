"""Who is this face: dlib's 128-d face descriptor, enrolled people and clusters of unknown faces.

The descriptor is dlib's ResNet face-recognition model (weights ship in the
``face-recognition-models`` wheel, so nothing is downloaded at run time). Two descriptors of one
person lie closer than 0.6 (dlib's documented tolerance); on the project's clips the largest
same-person distance was 0.50 and the smallest different-person distance 0.79.

Faces reach this module as the pipeline's 224×224 crops (original SyncNet geometry,
:mod:`syncnet_fcn.crops`): the face box sits at a fixed place in every crop, so dlib's own face
detector is not needed. Reference photos go through the same path (project detector → crop →
descriptor), so photos and video faces are described alike.

:class:`FaceGallery` holds the enrolled people and the clusters of unknown faces (``P1``, ``P2``, …),
assigns a label to each new face, and saves/restores its state as plain JSON (for ``--resume``).
Optional extra: ``pip install syncnet-fcn[timeline]``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .crops import CROP_SCALE, crop_face
from .errors import InvalidArgumentError, SyncNetError

#: descriptors of one person are closer than this (dlib documents 0.6; on the clips same-person
#: pairs reached 0.35 and different people 0.63, so the midpoint)
SAME_PERSON_DISTANCE = 0.5
EXTRA_HINT = "install the timeline extra: pip install 'syncnet-fcn[timeline]'"


class IdentityUnavailableError(SyncNetError):
    code = "identity_unavailable"
    http_status = 503


def _models():
    """dlib's shape predictor and face recogniser, loaded once."""
    global _LOADED
    if _LOADED is None:
        try:
            import dlib
            with warnings.catch_warnings():  # face_recognition_models imports the deprecated pkg_resources
                warnings.simplefilter("ignore")
                import face_recognition_models as frm
        except ImportError as exc:
            raise IdentityUnavailableError(f"face identities need dlib and its models ({exc.name} is missing): "
                                           f"{EXTRA_HINT}") from None
        _LOADED = (dlib, dlib.shape_predictor(frm.pose_predictor_five_point_model_location()),
                   dlib.face_recognition_model_v1(frm.face_recognition_model_location()))
    return _LOADED


_LOADED = None


def face_rect_in_crop(size: int = 224, crop_scale: float = CROP_SCALE) -> tuple[int, int, int, int]:
    """Where the (square) face box lies in a crop of the original geometry: ``left, top, right, bottom``.

    The crop is ``2*(1+cs)`` half-boxes wide, with the box ``cs`` half-boxes from its left edge and
    flush with its top (see :mod:`syncnet_fcn.crops`).
    """
    unit = size / (2 * (1 + crop_scale))  # one half-box, in crop pixels
    left = int(round(crop_scale * unit))
    return left, 0, int(round(left + 2 * unit)), int(round(2 * unit))


def describe_crops(crops_bgr: np.ndarray) -> np.ndarray:
    """One descriptor (float64, 128) for a face seen in several crops: the mean of each crop's."""
    dlib, shapes, recogniser = _models()
    left, top, right, bottom = face_rect_in_crop(crops_bgr.shape[1])
    rect = dlib.rectangle(left, top, right, bottom)
    vectors = []
    for crop in crops_bgr:
        rgb = np.ascontiguousarray(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB))
        vectors.append(np.asarray(recogniser.compute_face_descriptor(rgb, shapes(rgb, rect)), np.float64))
    return np.mean(vectors, axis=0)


def face_distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))


def describe_photo(path: str | Path, detector=None) -> np.ndarray:
    """The descriptor of the one face in a reference photo; a clear error otherwise."""
    path = Path(path)
    if not path.is_file():
        raise InvalidArgumentError(f"reference photo not found: {path}")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InvalidArgumentError(f"cannot read reference photo {path.name}: not an image file")
    return describe_single_face(image, f"reference photo {path.name}", detector)


def describe_single_face(image_bgr: np.ndarray, what: str, detector=None, largest: bool = False) -> np.ndarray:
    """The descriptor of the face in ``image_bgr``; with ``largest`` the biggest of several faces."""
    if detector is None:
        from detectors import create_detector

        detector = create_detector("mediapipe")
    found = detector.detect(image_bgr)
    if not found:
        raise InvalidArgumentError(f"no face found in {what}")
    if len(found) > 1 and not largest:
        raise InvalidArgumentError(f"{len(found)} faces found in {what}: give a photo with exactly one face")
    best = max(found, key=lambda d: float((d.box[2] - d.box[0]) * (d.box[3] - d.box[1])))
    return describe_crops(crop_face(image_bgr, best.box)[None])


@dataclass
class FaceGallery:
    """Enrolled people (name → reference descriptors) and clusters of unknown faces.

    :meth:`assign` labels a face descriptor: the nearest enrolled person within ``threshold``, else
    the nearest unknown cluster within it (whose centre then moves towards the face), else a new
    cluster ``P<n>``. Everything is float64 lists, so a saved and restored gallery labels the next
    face exactly as the original would.
    """

    threshold: float = SAME_PERSON_DISTANCE
    people: dict[str, list[list[float]]] = field(default_factory=dict)
    # label -> {"sum": [...], "count": n}
    clusters: dict[str, dict] = field(default_factory=dict)

    def enrol(self, name: str, descriptor: np.ndarray) -> None:
        self.people.setdefault(name, []).append([float(v) for v in np.asarray(descriptor, np.float64)])

    def assign(self, descriptor: np.ndarray) -> tuple[str, float]:
        """``(label, distance to it)`` for one face; updates the unknown clusters."""
        descriptor = np.asarray(descriptor, np.float64)
        best_name, best = None, np.inf
        for name, refs in self.people.items():
            d = min(face_distance(descriptor, r) for r in refs)
            if d < best:
                best_name, best = name, d
        if best_name is not None and best <= self.threshold:
            return best_name, best
        best_name, best = None, np.inf
        for label, cluster in self.clusters.items():
            d = face_distance(descriptor, np.asarray(cluster["sum"]) / cluster["count"])
            if d < best:
                best_name, best = label, d
        if best_name is None or best > self.threshold:
            best_name, best = f"P{len(self.clusters) + 1}", 0.0
            self.clusters[best_name] = {"sum": [0.0] * len(descriptor), "count": 0}
        cluster = self.clusters[best_name]
        cluster["sum"] = [float(v) for v in np.asarray(cluster["sum"]) + descriptor]
        cluster["count"] += 1
        return best_name, float(best)

    def to_state(self) -> dict:
        return {"threshold": self.threshold, "people": self.people, "clusters": self.clusters}

    @classmethod
    def from_state(cls, state: dict) -> FaceGallery:
        return cls(threshold=float(state["threshold"]), people={k: [list(v) for v in refs] for k, refs in state["people"].items()},
                   clusters={k: {"sum": list(v["sum"]), "count": int(v["count"])} for k, v in state["clusters"].items()})


__all__ = ["SAME_PERSON_DISTANCE", "FaceGallery", "IdentityUnavailableError", "describe_crops", "describe_photo",
           "describe_single_face", "face_distance", "face_rect_in_crop"]
