"""MediaPipe's bundled BlazeFace detector (full-range model), with boxes made S3FD-like."""

from __future__ import annotations

import cv2
import numpy as np

from . import Detection

# MediaPipe's BlazeFace box is tight: brows to chin. The original SyncNet pipeline cropped around
# S3FD boxes, which reach higher (some forehead) and are a little larger. We grow the box about its
# centre by BOX_SCALE and move the centre up by BOX_RAISE box heights. The figures come from matching
# the original pipeline's own output: in syncnet_example.avi (a 224x224 crop the original made with
# crop scale 0.4) the S3FD box must be 224/1.4 = 160 px wide, centred at x = 112, y = 80 (see
# syncnet_fcn/crops.py for that geometry). Over its 317 frames (detected with a border around the
# frame, see PAD_MARGIN) the full-range model's median box is 149 px, centred 5.5 px lower:
# 160/149 = 1.07 and 5.5/149 = 0.04; with these, the median box comes out 160 px centred at y = 79.
# That is a property of the two detectors' box conventions (relative to the face), not of the clip,
# so it carries to any video.
BOX_SCALE = 1.07
BOX_RAISE = 0.04
# Border added (as a fraction of the longer side) when a face fills the frame or touches its edge;
# the calibration above was measured with such a border (the face in syncnet_example.avi fills it).
PAD_MARGIN = 0.25
# In a run of close-up frames only the bordered look runs; every this many frames both run again,
# so that a smaller face appearing beside the close-up is not missed for long.
RECHECK_EVERY = 25
# A raw box closer than this fraction of the frame to an edge counts as touching it.
EDGE_FRACTION = 0.02
# A raw box wider or taller than this fraction of the frame's shorter side is a close-up: the model
# boxes such faces short without a border (syncnet_example.avi: 152 px without, 160 px with).
CLOSE_UP_FRACTION = 0.4

def available() -> bool:
    try:
        import mediapipe  # noqa: F401
    except ImportError:
        return False
    return True


class MediaPipeFaceDetector:
    """``detect(frame_bgr)`` → S3FD-like boxes in the frame's pixels.

    ``full_range=True`` uses the full-range model (faces up to ~5 m, i.e. small faces in wide shots);
    the short-range model is tuned to faces filling much of the frame. ``max_side`` downscales the
    frame before detection (the model itself looks at 192×192) and boxes are mapped back.
    """

    name = "mediapipe"

    def __init__(self, min_confidence: float = 0.5, full_range: bool = True, max_side: int | None = 640):
        from mediapipe.python.solutions import face_detection

        self.min_confidence = float(min_confidence)
        self.full_range = bool(full_range)
        self.max_side = max_side
        self._model = face_detection.FaceDetection(
            model_selection=1 if self.full_range else 0, min_detection_confidence=self.min_confidence
        )
        # Frames in a row seen as close-ups (faces needing the border); 0: look without it first.
        self._close_up_run = 0

    def detect(self, frame_bgr: np.ndarray) -> list[Detection]:
        height, width = frame_bgr.shape[:2]
        scale = 1.0
        image = frame_bgr
        if self.max_side and max(height, width) > self.max_side:
            scale = self.max_side / max(height, width)
            image = cv2.resize(frame_bgr, (max(1, round(width * scale)), max(1, round(height * scale))),
                               interpolation=cv2.INTER_AREA)
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        found = None
        if self._close_up_run and self._close_up_run < RECHECK_EVERY:
            # Consecutive frames of a close-up: the bordered look alone, as long as it finds only
            # faces that need it (a face the plain look would box better sends us back).
            found = self._run(rgb, margin=PAD_MARGIN)
            if found and all(_needs_border(box, rgb.shape) for box, _ in found):
                self._close_up_run += 1
            else:
                found = None
        if found is None:
            found = self._run(rgb, margin=0)
            self._close_up_run = 0
            if not found or any(_needs_border(box, rgb.shape) for box, _ in found):
                # A face filling the frame or cut by its edge is often missed or boxed short: look
                # again with a border around the frame. Only then, because the border costs
                # resolution (the model sees 192x192) that small faces in wide shots need.
                padded = self._run(rgb, margin=PAD_MARGIN)
                kept = [(box, score) for box, score in found if not _needs_border(box, rgb.shape)
                        and not any(_iou(box, other) > 0.3 for other, _ in padded)]
                found = padded + kept
                if padded and all(_needs_border(box, rgb.shape) for box, _ in found):
                    self._close_up_run = 1
        detections = []
        for (x1, y1, x2, y2), score in found:
            w, h = (x2 - x1) * BOX_SCALE, (y2 - y1) * BOX_SCALE
            cx, cy = (x1 + x2) / 2, (y1 + y2) / 2 - BOX_RAISE * (y2 - y1)
            box = np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dtype=np.float32) / scale
            detections.append(Detection(box=box, score=score))
        return detections

    def _run(self, rgb: np.ndarray, margin: float) -> list[tuple[tuple[float, float, float, float], float]]:
        """Raw MediaPipe boxes ``(x1, y1, x2, y2)`` in ``rgb``'s pixels, detecting on a bordered copy."""
        height, width = rgb.shape[:2]
        pad = int(round(margin * max(height, width)))
        if pad:
            rgb = cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        full_h, full_w = rgb.shape[:2]
        result = self._model.process(rgb)
        boxes = []
        for found in result.detections or []:
            rel = found.location_data.relative_bounding_box
            if rel.width <= 0 or rel.height <= 0:
                continue
            x1, y1 = rel.xmin * full_w - pad, rel.ymin * full_h - pad
            x2, y2 = x1 + rel.width * full_w, y1 + rel.height * full_h
            boxes.append(((x1, y1, x2, y2), float(found.score[0]) if found.score else 0.0))
        return boxes

    def close(self) -> None:
        self._model.close()

    def __del__(self):
        try:
            self._model.close()
        except Exception:  # interpreter shutdown or already closed
            pass


def _needs_border(box, shape) -> bool:
    """A raw box touching the frame's edge or filling much of it."""
    height, width = shape[:2]
    x1, y1, x2, y2 = box
    touches = (x1 < EDGE_FRACTION * width or y1 < EDGE_FRACTION * height
               or x2 > (1 - EDGE_FRACTION) * width or y2 > (1 - EDGE_FRACTION) * height)
    return touches or max(x2 - x1, y2 - y1) > CLOSE_UP_FRACTION * min(height, width)


def _iou(a, b) -> float:
    inter_w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    inter_h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = inter_w * inter_h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def create(**options) -> MediaPipeFaceDetector:
    return MediaPipeFaceDetector(**options)
