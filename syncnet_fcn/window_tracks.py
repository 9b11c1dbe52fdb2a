"""Face tracks and their crops within one window of a long recording, from a single streamed look.

:mod:`syncnet_fcn.tracking` sees a whole file before it links detections, then cuts crops in a
second decode. A recording of hours is read once, window by window, so here each frame is handled as
it is decoded: the detector runs on every ``detect_every``-th frame (and on the frame of a scene
cut); the frames in between wait, as decoded pictures, until the next detection gives their boxes by
linear interpolation, and are cropped then. A detection joins the piece whose last box overlaps it
most; a piece missed by the detector keeps its last box for up to ``max_missed`` looks (then ends at
its last sighting); a scene cut ends every piece. Every window starts afresh (new scene detector,
no pieces carried over), so a window's result depends only on its own frames — what makes a resumed
run equal an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .crops import crop_timeline_frame
from .tracking import TrackingOptions, _iou

# A piece's boxes move between two looks (detect_every frames apart): a looser overlap than the
# per-frame trackers' 0.5 still tells faces apart.
_LINK_IOU = 0.3
# Looks a piece may miss before it ends.
_MAX_MISSED_LOOKS = 2
_SCENE_WIDTH = 128


@dataclass
class FacePiece:
    """One face followed through consecutive frames of a window: its boxes and 224×224 crops."""

    start_frame: int
    boxes: list = field(default_factory=list)
    crops: list = field(default_factory=list)
    last_seen: int = -1  # the last frame the detector found it on
    missed: int = 0

    @property
    def n_frames(self) -> int:
        return len(self.crops)

    @property
    def end_frame(self) -> int:
        return self.start_frame + len(self.crops) - 1

    def add(self, frame, box) -> None:
        self.boxes.append(np.asarray(box, np.float32))
        self.crops.append(crop_timeline_frame(frame, box))

    def trim_to_last_seen(self) -> None:
        keep = self.last_seen - self.start_frame + 1
        del self.boxes[keep:], self.crops[keep:]


class WindowFaces:
    """Feed a window's frames in order with :meth:`add`; :meth:`finish` returns its face pieces."""

    def __init__(self, detector, options: TrackingOptions | None = None, min_frames: int = 25):
        from scenedetect.detectors import ContentDetector

        self.detector = detector
        self.options = options or TrackingOptions()
        self.min_frames = int(min_frames)
        self.scenes = ContentDetector(threshold=self.options.scene_threshold)
        self.every = max(1, int(self.options.detect_every))
        self.active: list[FacePiece] = []
        self.done: list[FacePiece] = []
        self.waiting: list[tuple[int, object]] = []
        self.last_look: int | None = None

    def add(self, index: int, frame) -> None:
        cut = any(0 < c <= index for c in self.scenes.process_frame(index, frame.thumbnail(_SCENE_WIDTH)))
        if cut:
            # the frames before the cut keep the boxes last seen; nothing links across it
            for waiting_index, waiting_frame in self.waiting:
                for piece in self.active:
                    piece.add(waiting_frame, piece.boxes[-1])
            self.waiting = []
            self._close(self.active)
            self.active = []
            self._look(index, frame)
        elif self.last_look is None or index - self.last_look >= self.every:
            self._look(index, frame)
        else:
            self.waiting.append((index, frame))

    def finish(self) -> list[FacePiece]:
        if self.waiting:  # the window's last frame is always looked at
            index, frame = self.waiting.pop()
            self._look(index, frame)
        self._close(self.active)
        self.active = []
        pieces = sorted((p for p in self.done if p.n_frames >= self.min_frames),
                        key=lambda p: (p.start_frame, float(p.boxes[0][0])))
        self.done = []
        return pieces

    # ------------------------------------------------------------------------------------------------

    def _detect(self, frame) -> np.ndarray:
        image = frame.image(self.options.detect_max_side)
        scale = np.array([frame.width / image.shape[1], frame.height / image.shape[0]] * 2, np.float32)
        found = [d for d in self.detector.detect(image) if d.score >= self.options.min_confidence]
        boxes = np.array([d.box * scale for d in found], np.float32).reshape(-1, 4)
        if self.options.min_face_size and len(boxes):
            sizes = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
            boxes = boxes[sizes >= self.options.min_face_size]
        return boxes

    def _look(self, index: int, frame) -> None:
        boxes = self._detect(frame)
        matched: dict[int, int] = {}  # piece position -> detection row
        if self.active and len(boxes):
            overlaps = _iou(np.array([p.boxes[-1] for p in self.active]), boxes)
            for flat in np.argsort(-overlaps, axis=None):
                p, d = np.unravel_index(flat, overlaps.shape)
                if overlaps[p, d] <= _LINK_IOU:
                    break
                if p in matched or d in matched.values():
                    continue
                matched[int(p)] = int(d)
        still = []
        for position, piece in enumerate(self.active):
            if position in matched:
                target = boxes[matched[position]]
                start, start_box = piece.end_frame, piece.boxes[-1]
                for waiting_index, waiting_frame in self.waiting:
                    weight = (waiting_index - start) / (index - start)
                    piece.add(waiting_frame, (1 - weight) * start_box + weight * target)
                piece.add(frame, target)
                piece.last_seen, piece.missed = index, 0
                still.append(piece)
            elif piece.missed < _MAX_MISSED_LOOKS:
                for waiting_index, waiting_frame in self.waiting:
                    piece.add(waiting_frame, piece.boxes[-1])
                piece.add(frame, piece.boxes[-1])
                piece.missed += 1
                still.append(piece)
            else:
                self._close([piece])
        for row in sorted(set(range(len(boxes))) - set(matched.values())):
            piece = FacePiece(start_frame=index, last_seen=index)
            piece.add(frame, boxes[row])
            still.append(piece)
        self.active = still
        self.waiting = []
        self.last_look = index

    def _close(self, pieces: list[FacePiece]) -> None:
        for piece in pieces:
            piece.trim_to_last_seen()
            self.done.append(piece)


__all__ = ["FacePiece", "WindowFaces"]
