"""Face tracks: one low-resolution decoding pass of detection and scene cuts, then IoU tracking.

The pass decodes each timeline frame once, scaled so its longer side is ``detect_max_side``; the
same frame feeds the face detector and scenedetect's ``ContentDetector``. Detections (a few boxes
per frame) are kept, frames are not. Tracking then runs scene by scene: a detection joins the track
whose last box overlaps it most (IoU above the threshold, greedy), tracks end after ``max_missed``
frames without a match or at a cut, gaps are filled by linear interpolation and box centre and size
are median-filtered, as the original SyncNet pipeline did (REFERENCE §4).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np
from scipy.ndimage import median_filter

from .media import iter_frames, probe

# scenedetect's own default: it downscales frames to about this width before scoring them.
_SCENE_WIDTH = 256
# Report progress every this many frames.
_PROGRESS_EVERY = 25


@dataclass
class TrackingOptions:
    min_track_frames: int = 25  # 1 s; the original's 100 is an option, not the default
    min_face_size: float = 0  # px (full resolution); the original's 100 is an option
    iou_threshold: float = 0.5
    max_missed: int = 25  # frames a track may miss before it ends (gaps interpolated)
    smooth_width: int = 13  # median filter of box size and centre
    detect_max_side: int = 640  # detection resolution
    detect_every: int = 1  # run the detector every k-th frame (interpolate between)
    scene_threshold: float = 27.0  # scenedetect ContentDetector
    min_confidence: float = 0.5


@dataclass
class FaceTrack:
    track_id: int
    frames: np.ndarray  # consecutive timeline indices start..end (inclusive)
    boxes: np.ndarray  # (n, 4) float32 smoothed x1, y1, x2, y2 in full-resolution pixels
    scores: np.ndarray = field(repr=False)  # (n,) detector score, nan where interpolated

    @property
    def start_frame(self) -> int:
        return int(self.frames[0])

    @property
    def end_frame(self) -> int:
        return int(self.frames[-1])

    @property
    def n_frames(self) -> int:
        return int(len(self.frames))

    def bbox_summary(self) -> dict:
        """Median box: top-left ``x``, ``y``, ``w``, ``h`` and ``size`` (median longer side), in px."""
        widths = self.boxes[:, 2] - self.boxes[:, 0]
        heights = self.boxes[:, 3] - self.boxes[:, 1]
        return {
            "x": round(float(np.median(self.boxes[:, 0])), 1),
            "y": round(float(np.median(self.boxes[:, 1])), 1),
            "w": round(float(np.median(widths)), 1),
            "h": round(float(np.median(heights)), 1),
            "size": round(float(np.median(np.maximum(widths, heights))), 1),
        }


# ----------------------------------------------------------------------------------------------------
# the detection pass


def _scan(video, detector, options: TrackingOptions, progress):
    """Per-frame detections (full-resolution boxes + scores) and scene-cut frames, in one pass."""
    from scenedetect.detectors import ContentDetector

    info = probe(video)
    total = info.n_frames
    scenes = ContentDetector(threshold=options.scene_threshold)
    every = max(1, int(options.detect_every))
    detections: dict[int, np.ndarray] = {}
    cuts: set[int] = set()
    last = -1
    for index, frame in iter_frames(video, max_side=options.detect_max_side):
        height, width = frame.shape[:2]
        step = max(1, int(width // _SCENE_WIDTH))
        # Nearest-neighbour subsampling, as cheap as it gets: the score is a mean over pixels.
        small = cv2.resize(frame, (width // step, height // step), interpolation=cv2.INTER_NEAREST) if step > 1 else frame
        cuts.update(scenes.process_frame(index, small))
        if index % every == 0:
            sx, sy = info.width / width, info.height / height
            found = [d for d in detector.detect(frame) if d.score >= options.min_confidence]
            rows = np.zeros((len(found), 5), np.float32)
            for k, det in enumerate(found):
                rows[k, :4] = det.box * np.array([sx, sy, sx, sy], np.float32)
                rows[k, 4] = det.score
            detections[index] = rows
        last = index
        if progress is not None and (index + 1) % _PROGRESS_EVERY == 0:
            progress(index + 1, total)
    cuts.update(scenes.post_process(last))
    if progress is not None:
        progress(last + 1, total)
    return detections, sorted(c for c in cuts if 0 < c <= last), last + 1


# ----------------------------------------------------------------------------------------------------
# tracking


def _iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """IoU matrix between (n, 4) and (m, 4) boxes."""
    x1 = np.maximum(boxes_a[:, None, 0], boxes_b[None, :, 0])
    y1 = np.maximum(boxes_a[:, None, 1], boxes_b[None, :, 1])
    x2 = np.minimum(boxes_a[:, None, 2], boxes_b[None, :, 2])
    y2 = np.minimum(boxes_a[:, None, 3], boxes_b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (boxes_a[:, 2] - boxes_a[:, 0]) * (boxes_a[:, 3] - boxes_a[:, 1])
    area_b = (boxes_b[:, 2] - boxes_b[:, 0]) * (boxes_b[:, 3] - boxes_b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def _link(detections: dict[int, np.ndarray], first: int, stop: int, options: TrackingOptions) -> list[list]:
    """Greedy IoU linking of detections in frames ``first .. stop-1`` (one scene).

    Returns tracks as lists of ``(frame, box, score)`` observations.
    """
    finished: list[list] = []
    active: list[list] = []
    for index in range(first, stop):
        rows = detections.get(index)
        if rows is None:
            continue  # the detector did not run on this frame
        still = []
        for track in active:
            (finished if index - track[-1][0] > options.max_missed else still).append(track)
        active = still
        unmatched = set(range(len(rows)))
        if active and len(rows):
            overlaps = _iou(np.array([t[-1][1] for t in active]), rows[:, :4])
            taken_tracks: set[int] = set()
            # Highest overlaps first: each track and each detection is used at most once.
            for flat in np.argsort(-overlaps, axis=None):
                t, d = np.unravel_index(flat, overlaps.shape)
                if overlaps[t, d] <= options.iou_threshold:
                    break
                if t in taken_tracks or d not in unmatched:
                    continue
                active[t].append((index, rows[d, :4], float(rows[d, 4])))
                taken_tracks.add(t)
                unmatched.discard(d)
        for d in sorted(unmatched):
            active.append([(index, rows[d, :4], float(rows[d, 4]))])
    return finished + active


def _smooth(values: np.ndarray, width: int) -> np.ndarray:
    width = min(int(width), len(values))
    if width % 2 == 0:
        width -= 1
    if width <= 1:
        return values
    # Edges repeat the end values (the original's medfilt pads with zeros, biasing the first and
    # last frames' boxes towards the origin).
    return median_filter(values, size=width, mode="nearest")


def _to_track(observations: list, options: TrackingOptions) -> FaceTrack | None:
    seen = np.array([o[0] for o in observations])
    boxes_seen = np.array([o[1] for o in observations], np.float64)
    frames = np.arange(seen[0], seen[-1] + 1)
    if len(frames) < options.min_track_frames:
        return None
    boxes = np.stack([np.interp(frames, seen, boxes_seen[:, k]) for k in range(4)], axis=1)
    scores = np.full(len(frames), np.nan, np.float32)
    scores[seen - seen[0]] = [o[2] for o in observations]

    centre_x = _smooth((boxes[:, 0] + boxes[:, 2]) / 2, options.smooth_width)
    centre_y = _smooth((boxes[:, 1] + boxes[:, 3]) / 2, options.smooth_width)
    width = _smooth(boxes[:, 2] - boxes[:, 0], options.smooth_width)
    height = _smooth(boxes[:, 3] - boxes[:, 1], options.smooth_width)
    if max(width.mean(), height.mean()) < options.min_face_size:
        return None
    smoothed = np.stack([centre_x - width / 2, centre_y - height / 2, centre_x + width / 2, centre_y + height / 2], 1)
    return FaceTrack(track_id=-1, frames=frames.astype(np.int64), boxes=smoothed.astype(np.float32), scores=scores)


def find_face_tracks(video, *, detector=None, options: TrackingOptions | None = None,
                     progress: Callable[[int, int], None] | None = None) -> list[FaceTrack]:
    """Every face track of ``video``, ordered by start frame, ``track_id`` 0, 1, ….

    Returns ``[]`` when no face track passes the options; the caller decides whether that is an error.
    ``progress(done_frames, total_frames)`` is called now and then during the decoding pass.
    """
    options = options or TrackingOptions()
    if detector is None:
        from detectors import create_detector

        # The pass already decodes at detect_max_side: the detector need not downscale again.
        detector = create_detector("mediapipe", min_confidence=options.min_confidence, max_side=None)
    detections, cuts, n_frames = _scan(os.fspath(video), detector, options, progress)

    tracks = []
    bounds = [0, *cuts, n_frames]
    for first, stop in zip(bounds[:-1], bounds[1:]):
        for observations in _link(detections, first, stop, options):
            track = _to_track(observations, options)
            if track is not None:
                tracks.append(track)
    tracks.sort(key=lambda t: (t.start_frame, t.boxes[0, 0]))
    for track_id, track in enumerate(tracks):
        track.track_id = track_id
    return tracks


__all__ = ["TrackingOptions", "FaceTrack", "find_face_tracks"]
