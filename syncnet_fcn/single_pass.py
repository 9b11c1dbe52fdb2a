"""Faces found, tracked and cropped in one decoding pass.

:func:`syncnet_fcn.tracking.find_face_tracks` followed by :func:`syncnet_fcn.crops.iter_track_crops`
decodes the video twice. Here every frame is decoded once: it feeds the detection schedule and the
scene detector, waits in a short queue while the tracks around it settle, and leaves once every
track that can use it has cut its crop. The crops are the same pixels the two passes give
(full decoding, the original geometry on the same smoothed boxes), because a track's box at a frame
depends only on sightings a few frames ahead:

* detections up to the scanner's ``settled`` frame never change, and scene cuts arrive at most
  ``cut_delay`` frames late, so IoU linking runs that far behind the decoder, frame by frame;
* a box is interpolated between sightings and median-filtered over ``smooth_width`` frames, so the
  box at a frame is final once its track has a sighting half the filter's width beyond it (and the
  track is at least the filter's width long, which fixes the width);
* a track that stops being seen ends after ``max_missed`` frames or at a cut.

Frames are therefore held for about ``cut_delay + detect_every + max_missed`` frames (the queue is
bounded, never the whole video). An engine needs a track's length before its first crop, so a
track's crops wait until the track ends: in memory up to ``memory_crops`` crops over all tracks,
beyond that in a temporary file that is deleted afterwards.
"""

from __future__ import annotations

import os
import tempfile
from typing import Callable, Iterator, NamedTuple

import numpy as np

from .crops import crop_timeline_frame
from .media import iter_timeline, prefetched, probe
from .tracking import (
    FaceTrack,
    TrackingOptions,
    _Linker,
    _Scan,
    _smooth_width,
    _to_track,
    _track_min_frames,
    smoothed_boxes,
)

# Report progress every this many frames.
_PROGRESS_EVERY = 25


class TrackFound(NamedTuple):
    """A finished face track; its crops follow as :class:`CropChunk` events with the same ``key``."""

    key: int
    track: FaceTrack


class TrackOpened(NamedTuple):
    """With ``early``: a face followed long enough to be a track (unless its face proves too small);
    its crops follow as :class:`CropChunk` events while it is still being followed, and then
    :class:`TrackFound` (the final track) or :class:`TrackDropped`."""

    key: int
    start_frame: int


class TrackDropped(NamedTuple):
    """With ``early``: the opened track ``key`` did not pass the options after all; forget its crops."""

    key: int


class CropChunk(NamedTuple):
    """``crops`` ``(n, size, size, 3)`` uint8 BGR of track ``key`` from timeline frame ``first_frame`` on."""

    key: int
    first_frame: int
    crops: np.ndarray


class _Spill:
    """Room for crops in memory (a count shared by all tracks), and a temporary folder beyond it."""

    def __init__(self, memory_crops: int):
        self.memory_left = int(memory_crops)
        self._folder: tempfile.TemporaryDirectory | None = None
        self._files = 0

    def path(self) -> str:
        if self._folder is None:
            self._folder = tempfile.TemporaryDirectory(prefix="syncnet_fcn_crops_")
        self._files += 1
        return os.path.join(self._folder.name, f"{self._files}.npy")

    def close(self) -> None:
        if self._folder is not None:
            self._folder.cleanup()
            self._folder = None


class _Candidate:
    """A track being linked, with the crops cut for its settled frames."""

    def __init__(self, key: int, observations: list, size: int, chunk: int, spill: _Spill):
        self.key = key
        self.observations = observations  # the linker's list: grows as the track is seen again
        self.next_frame = 0  # track-relative index of the next crop to cut
        self.size, self.chunk, self.spill = size, chunk, spill
        self._buffer: np.ndarray | None = None
        self._filled = 0
        self._chunks: list = []  # arrays in memory, or paths of spilled ones
        self.streaming = False  # opened: chunks go out as they fill, not kept (see open)
        self._sent = 0  # crops handed out so far

    @property
    def start(self) -> int:
        return int(self.observations[0][0])

    @property
    def length(self) -> int:
        return int(self.observations[-1][0]) - self.start + 1

    def cut(self, held: dict, width: int, stop: int) -> None:
        """Cut the crops of track frames ``next_frame .. stop-1`` from the held frames."""
        if stop <= self.next_frame:
            return
        boxes = smoothed_boxes(self.observations, width, self.next_frame, stop).astype(np.float32)
        for offset, box in enumerate(boxes):
            if self._buffer is None:
                self._buffer = np.empty((self.chunk, self.size, self.size, 3), np.uint8)
            self._buffer[self._filled] = crop_timeline_frame(held[self.start + self.next_frame + offset], box,
                                                             self.size)
            self._filled += 1
            if self._filled == self.chunk:
                self._keep(self._buffer)
                self._buffer, self._filled = None, 0
        self.next_frame = stop

    def seal(self) -> None:
        """The track ended: keep the last, partial chunk."""
        if self._filled:
            self._keep(self._buffer[: self._filled].copy())
        self._buffer, self._filled = None, 0

    def _keep(self, crops: np.ndarray) -> None:
        if self.streaming:  # handed out by the next flush(): never more than a few chunks
            self._chunks.append(crops)
            return
        if self.spill.memory_left >= len(crops):
            self.spill.memory_left -= len(crops)
            self._chunks.append(crops)
        else:
            path = self.spill.path()
            np.save(path, crops)
            self._chunks.append(path)

    def release(self) -> Iterator[CropChunk]:
        """The crops, chunk by chunk, in order; each leaves memory (or disk) as it is handed out."""
        while self._chunks:
            item = self._chunks.pop(0)
            if isinstance(item, str):
                crops = np.load(item)
                os.remove(item)
            else:
                crops = item
                if not self.streaming:
                    self.spill.memory_left += len(crops)
            yield CropChunk(self.key, self.start + self._sent, crops)
            self._sent += len(crops)

    def open(self) -> Iterator[TrackOpened | CropChunk]:
        """Announce the track and hand out what was kept; from now on chunks go out as they fill."""
        yield TrackOpened(self.key, self.start)
        yield from self.release()
        self.streaming = True

    def discard(self) -> None:
        for item in self._chunks:
            if isinstance(item, str):
                os.remove(item)
            elif not self.streaming:
                self.spill.memory_left += len(item)
        self._chunks = []


def iter_tracks_with_crops(
    video,
    *,
    detector=None,
    options: TrackingOptions | None = None,
    size: int = 224,
    chunk: int = 128,
    memory_crops: int = 512,
    progress: Callable[[int, int], None] | None = None,
    early: bool = False,
) -> Iterator[TrackFound | CropChunk | TrackOpened | TrackDropped]:
    """Decode ``video`` once; yield each face track as it ends, then its crops.

    For every track that :func:`~syncnet_fcn.tracking.find_face_tracks` (with ``fast_decode`` off:
    crops need fully decoded pixels) would return, a :class:`TrackFound` comes first, then its crops as
    :class:`CropChunk` events equal to :func:`~syncnet_fcn.crops.iter_track_crops`'s: consecutive,
    ``chunk`` frames each except the last. Tracks come in the order they end, with ``track_id`` -1;
    :func:`~syncnet_fcn.tracking.number_tracks` on all of them gives the usual order and ids.
    ``progress(done_frames, total_frames)`` is called now and then.

    ``early``: crops need not wait for their track's end. A face followed for ``min_track_frames``
    is long enough whatever comes (only the face-size filter can still drop it): a
    :class:`TrackOpened` is yielded and its crops follow as they are cut, so an engine works on them
    while the video is still being decoded (and none are kept or spilled here). The track ends with
    :class:`TrackFound` after its last crops, or :class:`TrackDropped`. Every track comes so
    (a short one all at once when it ends); the crops and tracks are the same as without ``early``.
    """
    options = options or TrackingOptions()
    if detector is None:
        from detectors import create_detector

        detector = create_detector("mediapipe", min_confidence=options.min_confidence, max_side=None)
    video = os.fspath(video)
    info = probe(video)
    scan = _Scan(detector, options, info)
    chunk = max(1, int(chunk))
    spill = _Spill(memory_crops)
    full_width = _smooth_width(options.smooth_width, 1 << 30)  # the filter of any track this long or longer
    state = {"linker": _Linker(options), "linked": -1, "next_key": 0}
    candidates: dict[int, _Candidate] = {}  # id(observation list) -> candidate
    held: dict[int, object] = {}  # timeline index -> decoded frame still needed for crops
    waiting_decision: list[_Candidate] = []  # ended before the video's length could settle min_frames
    known_cuts: set[int] = set()

    def decide(candidate: _Candidate, n_video_frames: int) -> Iterator:
        track = _to_track(candidate.observations, options, _track_min_frames(options, n_video_frames))
        if early:
            if track is None:
                if candidate.streaming:
                    candidate.discard()
                    yield TrackDropped(candidate.key)
                else:
                    candidate.discard()
                return
            if not candidate.streaming:
                yield from candidate.open()
            yield from candidate.release()
            yield TrackFound(candidate.key, track)
            return
        if track is None:
            candidate.discard()
            return
        yield TrackFound(candidate.key, track)
        yield from candidate.release()

    def end_track(observations: list, frames_so_far: int) -> Iterator:
        candidate = candidates.pop(id(observations))
        candidate.cut(held, _smooth_width(options.smooth_width, candidate.length), candidate.length)
        candidate.seal()
        if candidate.streaming or _track_min_frames(options, frames_so_far) == options.min_track_frames:
            # cannot change any more (an opened track is already at least min_track_frames long)
            yield from decide(candidate, frames_so_far)
        else:
            waiting_decision.append(candidate)

    def link_up_to(frontier: int, frames_so_far: int) -> Iterator:
        for index in range(state["linked"] + 1, frontier + 1):
            if index in scan.cuts:  # a new scene: every track of the old one ends
                for observations in state["linker"].close():
                    yield from end_track(observations, frames_so_far)
                state["linker"] = _Linker(options)
            rows = scan.detections.get(index)
            if rows is None:
                continue
            for observations in state["linker"].add(index, rows):
                yield from end_track(observations, frames_so_far)
            for observations in state["linker"].active:
                if id(observations) not in candidates:
                    candidates[id(observations)] = _Candidate(state["next_key"], observations, size, chunk, spill)
                    state["next_key"] += 1
        state["linked"] = max(state["linked"], frontier)
        # cut what has settled: a box is final half a filter's width before the last sighting
        for candidate in candidates.values():
            if candidate.length >= full_width:
                candidate.cut(held, full_width, candidate.length - full_width // 2)
            if early:
                if not candidate.streaming and candidate.length >= options.min_track_frames:
                    yield from candidate.open()
                if candidate.streaming:
                    yield from candidate.release()
        needed = min([state["linked"] + 1] + [c.start + c.next_frame for c in candidates.values()])
        for index in [i for i in held if i < needed]:
            del held[index]

    try:
        decoded = iter_timeline(video, info=info, fast_decode=False)
        frames_so_far = 0
        # decoding runs ahead in a thread (PyAV works without the GIL) while this one detects and crops
        for index, frame in prefetched(decoded, depth=8):
            held[index] = frame
            scan.feed(index, frame)
            frames_so_far = index + 1
            if len(scan.cuts) != len(known_cuts):
                late = [c for c in scan.cuts - known_cuts if c <= state["linked"]]
                if late:  # would mean scenedetect holds cuts back longer than it says
                    raise RuntimeError(f"scene cut at frame {late[0]} came after frame {state['linked']} was linked")
                known_cuts |= scan.cuts
            yield from link_up_to(min(scan.settled, index - scan.cut_delay), frames_so_far)
            if progress is not None and frames_so_far % _PROGRESS_EVERY == 0:
                progress(frames_so_far, info.n_frames)
        n_frames = scan.finish()
        late = [c for c in scan.cuts - known_cuts if c <= state["linked"]]
        if late:
            raise RuntimeError(f"scene cut at frame {late[0]} came after frame {state['linked']} was linked")
        yield from link_up_to(n_frames - 1, n_frames)
        for observations in state["linker"].close():
            yield from end_track(observations, n_frames)
        for candidate in waiting_decision:
            yield from decide(candidate, n_frames)
        if progress is not None:
            progress(n_frames, info.n_frames)
    finally:
        spill.close()


__all__ = ["TrackFound", "TrackOpened", "TrackDropped", "CropChunk", "iter_tracks_with_crops"]
