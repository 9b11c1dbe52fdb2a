"""Face tracks: one decoding pass of face detection and scene cuts, then IoU tracking.

The pass decodes each timeline frame once. Every frame, point-sampled to a thumbnail, feeds
scenedetect's ``ContentDetector``; the face detector sees frames scaled so their longer side is
``detect_max_side``, on a schedule: every ``detect_every``-th frame while the faces are steady, more
(bisecting) where two detections disagree, and always on a scene's first and last frame. Frames are
converted from the decoder's YUV only when one of those needs them. Detections (a few boxes per
frame) are kept, frames are not. Tracking then runs scene by scene: a detection joins the track
whose last box overlaps it most (IoU above the threshold, greedy), tracks end after ``max_missed``
frames without a match or at a cut, gaps are filled by linear interpolation and box centre and size
are median-filtered, as the original SyncNet pipeline did (REFERENCE §4).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy.ndimage import median_filter

from .media import iter_timeline, prefetched, probe

# Width of the frames scenedetect scores. Its own default is 256; the score is a mean of per-pixel
# changes over the frame, which a point-sampled 128-px frame estimates as well for a quarter the work.
_SCENE_WIDTH = 128
# Report progress every this many frames.
_PROGRESS_EVERY = 25


# The engines judge 5-frame windows and need at least one step beside them.
SHORTEST_TRACK_FRAMES = 6


@dataclass
class TrackingOptions:
    min_track_frames: int = 25  # 1 s; the original's 100 is an option, not the default
    min_face_size: float = 0  # px (full resolution); the original's 100 is an option
    iou_threshold: float = 0.5
    max_missed: int = 25  # frames a track may miss before it ends (gaps interpolated)
    smooth_width: int = 13  # median filter of box size and centre
    detect_max_side: int = 640  # detection resolution
    # Run the detector every k-th frame and interpolate, except between two detections that disagree
    # (face count, or IoU below steady_iou), where the frames between are bisected; 1: every frame.
    detect_every: int = 5
    steady_iou: float = 0.8
    # skip the decoder's deblocking in this pass: faces are found as well (mean box IoU 0.977–1.0 against
    # full decoding on 6 clips, 360p to 1080p) for a sixth less decoding; crops always decode fully
    fast_decode: bool = True
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


class _Scan:
    """Detections (full-resolution boxes + scores) on the frames the schedule picks, and scene cuts.

    Fed one decoded frame at a time (:meth:`feed`, then :meth:`finish`). Every frame feeds the scene
    detector (a thumbnail of it); the face detector runs on every ``detect_every``-th frame of a scene
    and on its first and last frame. Where two detections disagree (another face count, or a face
    that moved: IoU below ``steady_iou``) the stretch between them is bisected until every pair of
    neighbouring detections agrees or is adjacent, so a face that appears, vanishes or jumps is found
    on the very frame it does, and interpolation is only trusted across steady stretches. Frames
    waiting for that decision are kept as decoded pictures, not converted (at most ``detect_every - 1``
    of them).

    :attr:`settled` is the last frame up to which the detections can no longer change (later
    detections only land after it); scene cuts come at most :attr:`cut_delay` frames after the cut.
    """

    def __init__(self, detector, options: TrackingOptions, info):
        from scenedetect.detectors import ContentDetector

        self.detector, self.options, self.info = detector, options, info
        self.scenes = ContentDetector(threshold=options.scene_threshold)
        # scenedetect holds a cut back while it merges flashes (at most its filter length)
        self.cut_delay = int(getattr(self.scenes, "event_buffer_length", 0)) + 1
        self.every = max(1, int(options.detect_every))
        self.scale = None  # detection frame -> full-resolution pixels
        self.detections: dict[int, np.ndarray] = {}
        self.cuts: set[int] = set()
        self.waiting: dict[int, object] = {}  # frames after the scene's last detection, not detected yet
        self.last_detected = None  # in the current scene
        self.settled = -1
        self.last = -1

    def _detect(self, index, frame) -> None:
        options = self.options
        image = frame.image(options.detect_max_side)
        if self.scale is None:
            self.scale = np.array([self.info.width / image.shape[1], self.info.height / image.shape[0]] * 2,
                                  np.float32)
        found = [d for d in self.detector.detect(image) if d.score >= options.min_confidence]
        rows = np.zeros((len(found), 5), np.float32)
        for k, det in enumerate(found):
            rows[k, :4] = det.box * self.scale
            rows[k, 4] = det.score
        self.detections[index] = rows

    def _refine(self, first: int, last: int) -> None:
        """Between two detections that disagree, detect the middle frame and look at both halves."""
        if last - first < 2 or _agree(self.detections[first], self.detections[last], self.options.steady_iou):
            return
        middle = (first + last) // 2
        if middle not in self.waiting:
            return
        self._detect(middle, self.waiting[middle])
        self._refine(first, middle)
        self._refine(middle, last)

    def _detect_scheduled(self, index, frame) -> None:
        """Detect on ``index``, refining the stretch since the previous detection if they disagree."""
        self._detect(index, frame)
        if self.last_detected is not None:
            self._refine(self.last_detected, index)
        for done in [i for i in self.waiting if i <= index]:
            del self.waiting[done]
        self.last_detected = index
        # every frame up to here is detected or passed over for good
        self.settled = max(self.settled, index)

    def _start_scene(self, cut: int) -> None:
        waiting = self.waiting
        before = [i for i in waiting if i < cut]
        if before:  # the old scene's last frame
            self._detect_scheduled(max(before), waiting[max(before)])
        for i in before:
            waiting.pop(i, None)
        # A cut reported late (scenedetect merges flashes) may already have detections after it.
        self.last_detected = max((i for i in self.detections if i >= cut), default=None)
        after = sorted(i for i in waiting if i >= cut)
        if self.last_detected is None and after:
            self._detect_scheduled(after[0], waiting[after[0]])

    def feed(self, index: int, frame) -> None:
        for cut in self.scenes.process_frame(index, frame.thumbnail(_SCENE_WIDTH)):
            if 0 < cut <= index:
                self.cuts.add(cut)
                self._start_scene(cut)
        if self.last_detected is None or index - self.last_detected >= self.every:
            self._detect_scheduled(index, frame)
        else:
            self.waiting[index] = frame
        self.last = index

    def finish(self) -> int:
        """The video ended: detect its last frame, collect the last cuts; the number of frames."""
        if self.waiting:  # the video's last frame
            self._detect_scheduled(max(self.waiting), self.waiting[max(self.waiting)])
        self.cuts.update(c for c in self.scenes.post_process(self.last) if 0 < c <= self.last)
        self.settled = self.last
        return self.last + 1


def _scan(video, detector, options: TrackingOptions, progress):
    """Detections per frame, sorted scene cuts and the number of frames of ``video`` (see :class:`_Scan`)."""
    info = probe(video)
    scan = _Scan(detector, options, info)
    # decoding runs ahead in a thread (PyAV works without the GIL) while this one detects faces
    decoded = iter_timeline(video, info=info, fast_decode=options.fast_decode)
    for index, frame in prefetched(decoded, depth=8):
        scan.feed(index, frame)
        if progress is not None and (index + 1) % _PROGRESS_EVERY == 0:
            progress(index + 1, info.n_frames)
    n_frames = scan.finish()
    if progress is not None:
        progress(n_frames, info.n_frames)
    return scan.detections, sorted(scan.cuts), n_frames


def _agree(rows_a: np.ndarray, rows_b: np.ndarray, min_iou: float) -> bool:
    """Same number of faces, each with a distinct partner overlapping it by at least ``min_iou``."""
    if len(rows_a) != len(rows_b):
        return False
    if len(rows_a) == 0:
        return True
    overlaps = _iou(rows_a[:, :4], rows_b[:, :4])
    partners = overlaps.argmax(axis=1)
    return len(set(partners.tolist())) == len(partners) and bool(
        np.all(overlaps[np.arange(len(partners)), partners] >= min_iou))


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


class _Linker:
    """Greedy IoU linking of one scene's detections, fed frame by frame in order.

    Tracks are lists of ``(frame, box, score)`` observations. :meth:`add` returns the tracks that
    ended on that frame (missed for more than ``max_missed`` frames); :meth:`close` ends the rest.
    """

    def __init__(self, options: TrackingOptions):
        self.options = options
        self.active: list[list] = []
        self.previous_run = None  # the last frame before this one that the detector ran on

    def add(self, index: int, rows: np.ndarray) -> list[list]:
        options = self.options
        finished, still = [], []
        for track in self.active:
            last_seen = track[-1][0]
            # Frames the detector skipped are not misses: a track ends only when the detector looked
            # after its last sighting, did not find it, and more than max_missed frames have passed.
            missed = self.previous_run is not None and self.previous_run > last_seen
            (finished if missed and index - last_seen > options.max_missed else still).append(track)
        active = self.active = still
        self.previous_run = index
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
        return finished

    def close(self) -> list[list]:
        ended, self.active = self.active, []
        return ended


def _link(detections: dict[int, np.ndarray], first: int, stop: int, options: TrackingOptions) -> list[list]:
    """Greedy IoU linking of detections in frames ``first .. stop-1`` (one scene).

    Returns tracks as lists of ``(frame, box, score)`` observations.
    """
    linker = _Linker(options)
    finished: list[list] = []
    for index in range(first, stop):
        rows = detections.get(index)
        if rows is not None:  # else the detector did not run on this frame
            finished += linker.add(index, rows)
    return finished + linker.close()


def _smooth_width(width: int, n_frames: int) -> int:
    """The median filter's width on a track of ``n_frames`` frames (odd, at most the track)."""
    width = min(int(width), n_frames)
    return width - 1 if width % 2 == 0 else width


def _track_min_frames(options: TrackingOptions, n_video_frames: int) -> int:
    # A clip shorter than min_track_frames (an LRW word, a 0.9 s sample) is still read: its faces
    # need only cover most of it.
    return min(options.min_track_frames, max(SHORTEST_TRACK_FRAMES, int(0.8 * n_video_frames)))


def smoothed_boxes(observations: list, width: int, first: int, stop: int) -> np.ndarray:
    """Smoothed boxes (float64 x1, y1, x2, y2) of track frames ``first .. stop-1`` (track-relative).

    ``observations`` are the track's sightings so far, ``width`` the median filter's width for the
    whole track. Only sightings up to ``stop - 1 + width // 2`` frames after the track's start are
    needed, so a track still growing gives its early boxes exactly as the whole track will.
    """
    seen = np.array([o[0] for o in observations])
    boxes_seen = np.array([o[1] for o in observations], np.float64)
    half = max(width, 1) // 2
    lo = max(first - half, 0)
    hi = min(stop + half, int(seen[-1] - seen[0]) + 1)
    frames = np.arange(seen[0] + lo, seen[0] + hi)
    boxes = np.stack([np.interp(frames, seen, boxes_seen[:, k]) for k in range(4)], axis=1)

    def smooth(values):
        # Edges repeat the end values (the original's medfilt pads with zeros, biasing the first and
        # last frames' boxes towards the origin).
        values = values if width <= 1 else median_filter(values, size=width, mode="nearest")
        return values[first - lo:stop - lo]

    centre_x = smooth((boxes[:, 0] + boxes[:, 2]) / 2)
    centre_y = smooth((boxes[:, 1] + boxes[:, 3]) / 2)
    box_w = smooth(boxes[:, 2] - boxes[:, 0])
    box_h = smooth(boxes[:, 3] - boxes[:, 1])
    return np.stack([centre_x - box_w / 2, centre_y - box_h / 2, centre_x + box_w / 2, centre_y + box_h / 2], 1)


def _to_track(observations: list, options: TrackingOptions, min_frames: int) -> FaceTrack | None:
    seen = np.array([o[0] for o in observations])
    frames = np.arange(seen[0], seen[-1] + 1)
    if len(frames) < min_frames:
        return None
    smoothed = smoothed_boxes(observations, _smooth_width(options.smooth_width, len(frames)), 0, len(frames))
    if max((smoothed[:, 2] - smoothed[:, 0]).mean(), (smoothed[:, 3] - smoothed[:, 1]).mean()) < options.min_face_size:
        return None
    scores = np.full(len(frames), np.nan, np.float32)
    scores[seen - seen[0]] = [o[2] for o in observations]
    return FaceTrack(track_id=-1, frames=frames.astype(np.int64), boxes=smoothed.astype(np.float32), scores=scores)


def number_tracks(tracks: list[FaceTrack]) -> list[FaceTrack]:
    """``tracks`` ordered by start frame (then left edge), ``track_id`` 0, 1, … in that order."""
    tracks = sorted(tracks, key=lambda t: (t.start_frame, t.boxes[0, 0]))
    for track_id, track in enumerate(tracks):
        track.track_id = track_id
    return tracks


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

    min_frames = _track_min_frames(options, n_frames)
    tracks = []
    bounds = [0, *cuts, n_frames]
    for first, stop in zip(bounds[:-1], bounds[1:]):
        for observations in _link(detections, first, stop, options):
            track = _to_track(observations, options, min_frames)
            if track is not None:
                tracks.append(track)
    return number_tracks(tracks)


__all__ = ["TrackingOptions", "FaceTrack", "find_face_tracks"]
