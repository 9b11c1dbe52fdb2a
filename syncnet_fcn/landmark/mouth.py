"""Mouth shape per frame from mediapipe's bundled face mesh.

:class:`FaceMeshTracker` runs the 468-point face mesh on a face track's crops in tracking mode (the
face detector only runs until the mesh locks on, then each frame's mesh seeds the next — the reason it
is fast enough to run on every frame). :func:`mouth_features` turns the landmarks into numbers that
describe the lips and nothing else: every frame's mesh is first aligned to the track's mean face by a
3-D similarity transform fitted on rigid points (eye corners, nose bridge, forehead, cheekbones), so
head turns, nods and zoom do not read as mouth movement, and lengths are in units of the eye-corner
distance.
"""

from __future__ import annotations

import numpy as np

# Face-mesh vertex indices (the canonical 468-point topology).
LIPS_OUTER = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146)
LIPS_INNER = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95)
# Upper/lower vertex pairs across the inner and outer lip contours, left to right.
INNER_OPENING_PAIRS = ((80, 88), (81, 178), (82, 87), (13, 14), (312, 317), (311, 402), (310, 318))
OUTER_OPENING_PAIRS = ((39, 181), (37, 84), (0, 17), (267, 314), (269, 405))
MOUTH_CORNERS_OUTER = (61, 291)
MOUTH_CORNERS_INNER = (78, 308)
CHIN, NOSE_TIP, FOREHEAD = 152, 1, 10
EYE_OUTER_CORNERS = (33, 263)
# Points that move with the skull, not the jaw or lips: eye corners, nose bridge, forehead, cheekbones.
RIGID_POINTS = (33, 133, 263, 362, 168, 6, 197, 195, 5, 4, 10, 151, 9, 8, 234, 454, 127, 356, 70, 300)

N_LANDMARKS = 468
# The mesh points the lip features read: the rigid points the pose is fitted on, both lip contours, the
# chin and the nose tip (62 of 468). A track's mesh is kept as these alone (:func:`compact_landmarks`):
# a 5-hour stream is 450,000 frames, and the whole mesh would be 2.5 GB of it.
FEATURE_POINTS = tuple(sorted(set(RIGID_POINTS + LIPS_OUTER + LIPS_INNER + (CHIN, NOSE_TIP))))
_COLUMN = {point: column for column, point in enumerate(FEATURE_POINTS)}


def compact_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """``(n, 468, 3)`` face meshes → ``(n, len(FEATURE_POINTS), 3)``; already compact ones pass through."""
    landmarks = np.asarray(landmarks)
    if landmarks.ndim != 3 or landmarks.shape[1] not in (N_LANDMARKS, len(FEATURE_POINTS)):
        raise ValueError(f"expected (n, {N_LANDMARKS}, 3) or (n, {len(FEATURE_POINTS)}, 3) landmarks, got {landmarks.shape}")
    return landmarks if landmarks.shape[1] == len(FEATURE_POINTS) else landmarks[:, FEATURE_POINTS]


def _columns(points) -> list[int]:
    return [_COLUMN[point] for point in points]


# A landmark serialised with x, y and z all set: field tags 0x0d, 0x15, 0x1d, each before a float32,
# inside a length-delimited entry (tag 0x0a, length 15) of the landmark list.
_ENTRY_BYTES = 17
_ENTRY_HEAD = np.array([0x0A, 0x0F, 0x0D], np.uint8)


def _mesh_points(landmark_list, width: int, height: int) -> np.ndarray:
    """``(468, 3)`` pixel coordinates of a face mesh (z on the x scale, relative to the image width).

    Reading 468 landmark messages field by field costs more than the rest of the per-frame Python;
    their serialised form is read with numpy instead when every entry has the fixed layout above (a
    coordinate that is exactly 0 is left out of the encoding: then the slow path reads it). The values
    are the same either way: float32 widened to float64, times the size, rounded to float32.
    """
    buffer = np.frombuffer(landmark_list.SerializeToString(), np.uint8)
    if len(buffer) >= N_LANDMARKS * _ENTRY_BYTES and len(buffer) % _ENTRY_BYTES == 0:
        entries = buffer.reshape(-1, _ENTRY_BYTES)[:N_LANDMARKS]
        if ((entries[:, :3] == _ENTRY_HEAD).all() and (entries[:, 7] == 0x15).all()
                and (entries[:, 12] == 0x1D).all()):
            xyz = np.ascontiguousarray(entries[:, [3, 4, 5, 6, 8, 9, 10, 11, 13, 14, 15, 16]]).view("<f4")
            return (xyz.astype(np.float64) * np.array([width, height, width], np.float64)).astype(np.float32)
    points = landmark_list.landmark
    return np.array([(p.x * width, p.y * height, p.z * width) for p in points[:N_LANDMARKS]], np.float32)


class FaceMeshTracker:
    """Face mesh on consecutive crops of one face track (one instance per track: it keeps state)."""

    def __init__(self, min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5,
                 refine_landmarks: bool = False):
        import mediapipe as mp

        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=False,
            max_num_faces=1,
            refine_landmarks=refine_landmarks,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=min_tracking_confidence,
        )

        self._roi = MouthRegion()

    def process(self, crops_bgr: np.ndarray) -> np.ndarray:
        """``(n, H, W, 3)`` uint8 BGR → ``(n, 468, 3)`` float32 pixel coordinates; NaN where no face."""
        out = np.full((len(crops_bgr), N_LANDMARKS, 3), np.nan, dtype=np.float32)
        for i, crop in enumerate(crops_bgr):
            height, width = crop.shape[:2]
            # mediapipe wants RGB; reversing the channel axis is a view, made contiguous for its C++ side
            result = self._mesh.process(np.ascontiguousarray(crop[:, :, ::-1]))
            if result.multi_face_landmarks:
                out[i] = _mesh_points(result.multi_face_landmarks[0], width, height)
        return out

    def process_with_mouth(self, crops_bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Landmarks as :meth:`process` and the pose-normalised mouth image of every frame
        (``(n, *MOUTH_ROI_SHAPE)`` uint8 grey, zeros where no face)."""
        landmarks = self.process(crops_bgr)
        return landmarks, self._roi.extract_all(crops_bgr, landmarks)

    def close(self) -> None:
        self._mesh.close()


# The mouth image: rows × columns, and the box it shows in the track's upright face frame (units of
# the outer eye-corner distance, origin between the eyes, y down), relative to the mouth centre.
MOUTH_ROI_SHAPE = (32, 48)
MOUTH_BOX_X = (-0.55, 0.55)
MOUTH_BOX_Y = (-0.3, 0.43)  # more room below: the jaw drops when the mouth opens


class MouthRegion:
    """Cuts the mouth out of each frame in a face frame fixed by the skull, not the lips.

    The first frame with a mesh sets the track's template: its rigid points turned upright and scaled
    to unit eye distance, and its mouth centre. Every frame's rigid points are then fitted to the
    template by a 2-D similarity (least squares over 20 points, which averages their jitter), and the
    fixed box around the template's mouth is sampled — so the image moves with the lips and jaw only.
    """

    def __init__(self):
        self._template: np.ndarray | None = None
        self._box_origin: np.ndarray | None = None

    def extract_all(self, images_bgr: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        """:meth:`extract` for consecutive frames; zeros where the mesh found no face (NaN rows)."""
        out = np.zeros((len(images_bgr), *MOUTH_ROI_SHAPE), dtype=np.uint8)
        for i in np.flatnonzero(np.isfinite(landmarks).all(axis=(1, 2))):
            out[i] = self.extract(images_bgr[i], landmarks[i])
        return out

    def extract(self, image_bgr: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
        import cv2

        rigid = landmarks[list(RIGID_POINTS)].astype(np.float64)
        if self._template is None:
            axes, centre, eye_distance = _upright_axes(rigid)
            self._template = ((rigid - centre) @ axes.T / eye_distance)[:, :2]
            lips = landmarks[list(LIPS_OUTER)].astype(np.float64)
            mouth = ((lips - centre) @ axes.T / eye_distance)[:, :2].mean(axis=0)
            self._box_origin = np.array([mouth[0] + MOUTH_BOX_X[0], mouth[1] + MOUTH_BOX_Y[0]])
        scales, rotations, translations = _similarity_align(rigid[None, :, :2], self._template)
        scale, rotation, translation = scales[0], rotations[0], translations[0]
        rows, cols = MOUTH_ROI_SHAPE
        # template units → ROI pixels
        pixels = np.array([cols / (MOUTH_BOX_X[1] - MOUTH_BOX_X[0]), rows / (MOUTH_BOX_Y[1] - MOUTH_BOX_Y[0])])
        linear = pixels[:, None] * (scale * rotation)
        offset = pixels * (translation - self._box_origin)
        matrix = np.hstack([linear, offset[:, None]])
        grey = cv2.cvtColor(image_bgr, cv2.COLOR_BGR2GRAY)
        return cv2.warpAffine(grey, matrix, (cols, rows), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)


def _upright_axes(rigid: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Rotation (rows: x right, y down, z), centre and eye distance of an upright frontal face frame."""
    right_eye = rigid[RIGID_POINTS.index(EYE_OUTER_CORNERS[0])]
    left_eye = rigid[RIGID_POINTS.index(EYE_OUTER_CORNERS[1])]
    forehead = rigid[RIGID_POINTS.index(FOREHEAD)]
    x_axis = left_eye - right_eye
    eye_distance = float(np.linalg.norm(x_axis))
    x_axis = x_axis / eye_distance
    centre = (left_eye + right_eye) / 2
    down = centre - forehead
    y_axis = down - (down @ x_axis) * x_axis
    y_axis /= np.linalg.norm(y_axis)
    return np.stack([x_axis, y_axis, np.cross(x_axis, y_axis)]), centre, eye_distance


def _similarity_align(points: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame scale, rotation, translation mapping ``points[t]`` (n, k, d) onto ``reference`` (k, d).

    Umeyama's closed-form least-squares similarity transform, batched over frames.
    """
    mu_p = points.mean(axis=1, keepdims=True)
    mu_r = reference.mean(axis=0, keepdims=True)
    p = points - mu_p
    r = reference - mu_r
    cov = np.einsum("kr,nkp->nrp", r, p) / points.shape[1]
    u, s, vt = np.linalg.svd(cov)
    det = np.linalg.det(u @ vt)
    d = np.ones_like(s)
    d[:, -1] = np.sign(det)  # no reflections
    rotation = u @ (d[:, :, None] * vt)
    var_p = (p**2).sum(axis=(1, 2)) / points.shape[1]
    scale = (s * d).sum(axis=1) / np.maximum(var_p, 1e-12)
    translation = mu_r[0] - scale[:, None] * np.einsum("nij,nj->ni", rotation, mu_p[:, 0])
    return scale, rotation, translation


def _canonical_pose(rigid: np.ndarray) -> np.ndarray:
    """The rigid points turned to face the camera upright: eye line along x, eyes-to-forehead along −y,
    centred on the eyes, eye-corner distance 1. Without this the aligned frame would inherit the pose
    of whichever frame seeded the reference, and 2-D lip measures would depend on it."""
    axes, centre, eye_distance = _upright_axes(rigid)
    return (rigid - centre) @ axes.T / eye_distance


def align_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """Map every valid frame's mesh onto the track's mean face, upright and frontal, eye-corner distance 1.

    ``landmarks`` is ``(n, 468, 3)`` or compact (:func:`compact_landmarks`), with NaN rows for frames
    without a face; those stay NaN. Returns the compact points, aligned.
    """
    landmarks = compact_landmarks(landmarks)
    aligned = np.full(landmarks.shape, np.nan, dtype=np.float64)
    valid = np.isfinite(landmarks).all(axis=(1, 2))
    if not valid.any():
        return aligned
    pts = landmarks[valid].astype(np.float64)
    rigid = pts[:, _columns(RIGID_POINTS)]
    reference = rigid[0]
    # two passes: align to the first frame, then to the mean of the aligned rigid points
    for _ in range(2):
        scale, rot, trans = _similarity_align(rigid, reference)
        moved = scale[:, None, None] * np.einsum("nij,nkj->nki", rot, rigid) + trans[:, None]
        reference = moved.mean(axis=0)
    reference = _canonical_pose(reference)
    scale, rot, trans = _similarity_align(rigid, reference)
    aligned[valid] = scale[:, None, None] * np.einsum("nij,nkj->nki", rot, pts) + trans[:, None]
    return aligned


def mouth_features(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(n, 468, 3)`` (or compact) landmarks → ``(features (n, d), valid (n,))``.

    Columns: inner-lip openings (7), outer-lip openings (5), inner and outer mouth width, chin drop
    from the nose, then the 40 lip-contour points' x and y relative to the mouth centre. All are in
    eye-corner units in the pose-normalised frame. Rows of frames without a face are NaN.
    """
    aligned = align_landmarks(landmarks)
    valid = np.isfinite(aligned).all(axis=(1, 2))

    def dist(a, b):
        return np.linalg.norm(aligned[:, _COLUMN[a], :2] - aligned[:, _COLUMN[b], :2], axis=-1)

    openings = [dist(a, b) for a, b in INNER_OPENING_PAIRS + OUTER_OPENING_PAIRS]
    widths = [dist(*MOUTH_CORNERS_INNER), dist(*MOUTH_CORNERS_OUTER)]
    chin_drop = [aligned[:, _COLUMN[CHIN], 1] - aligned[:, _COLUMN[NOSE_TIP], 1]]
    lips = aligned[:, _columns(LIPS_OUTER + LIPS_INNER), :2]
    centre = lips.mean(axis=1, keepdims=True)
    contour = (lips - centre).reshape(len(aligned), -1)
    features = np.column_stack(openings + widths + chin_drop + [contour])
    return features.astype(np.float32), valid


# Low spatial frequencies of the mouth image: rows × columns of 2-D DCT coefficients kept.
APPEARANCE_DCT_BLOCK = (6, 8)


def mouth_appearance(rois: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``(n, rows, cols)`` mouth images → ``(n, 47)`` low-frequency DCT coefficients.

    What the lip contour cannot show — teeth, tongue, the dark of an open mouth — is in the image.
    Each frame is normalised to zero mean and unit contrast first (lighting changes), and the DC
    coefficient, zero after that, is dropped. Rows of frames without a face are NaN.
    """
    import cv2

    rows, cols = APPEARANCE_DCT_BLOCK
    out = np.full((len(rois), rows * cols - 1), np.nan, dtype=np.float32)
    for i in np.flatnonzero(valid):
        image = rois[i].astype(np.float32)
        image = (image - image.mean()) / (image.std() + 1.0)
        out[i] = cv2.dct(image)[:rows, :cols].reshape(-1)[1:]
    return out
