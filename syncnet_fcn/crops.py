"""Face crops with the original SyncNet geometry, streamed per track in chunks.

The original pipeline (REFERENCE §4) pads each frame by ``bsi = int(bs*(1+2*cs))`` pixels of value
110 on every side, where ``bs`` is half the longer side of the smoothed face box and ``cs`` the crop
scale (0.4), and cuts, in padded coordinates with ``(mx, my)`` the box centre shifted by ``bsi``:

    rows  int(my - bs)           .. int(my + bs*(1+2*cs))    height bs*(2+2*cs)
    cols  int(mx - bs*(1+cs))    .. int(mx + bs*(1+cs))      width  2*bs*(1+cs)

Both sides are ``2*bs*(1+cs)`` (2.8*bs, i.e. 1.4 face boxes, for cs = 0.4): the crop is square up to
the one-pixel truncation of ``int()``. It is centred ``cs*bs`` below the box centre, which keeps the
mouth and chin well inside. (REFERENCE §4 words the side as (1+2*cs)*bs*2; the indices above, which
the pipeline uses, give 2*(1+cs)*bs.) The crop is resized to 224x224 with bilinear interpolation,
OpenCV's default that the original used, so the network sees the pixels it was trained on.

Rather than padding the whole frame, :func:`crop_face` fills a 110-valued crop and copies in the part
that lies inside the frame: the same pixels, without copying a full frame per face. The streamed pass
goes further and converts (YUV to BGR) only the pixels under each crop window, not the whole frame.
"""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

import cv2
import numpy as np

from .media import iter_timeline, probe

CROP_SCALE = 0.4
PAD_VALUE = 110
# Tracks closer than this many frames are decoded in one run instead of seeking between them.
_MAX_GAP_DECODED = 50


def crop_window(box, crop_scale: float = CROP_SCALE) -> tuple[int, int, int, int]:
    """The original crop's ``(top, bottom, left, right)`` in frame pixels (may extend past the frame)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    half = max(x2 - x1, y2 - y1) / 2.0
    border = int(half * (1 + 2 * crop_scale))  # the original's frame padding
    centre_x, centre_y = (x1 + x2) / 2.0 + border, (y1 + y2) / 2.0 + border
    top = int(centre_y - half)
    bottom = int(centre_y + half * (1 + 2 * crop_scale))
    left = int(centre_x - half * (1 + crop_scale))
    right = int(centre_x + half * (1 + crop_scale))
    return top - border, bottom - border, left - border, right - border


def crop_face(frame_bgr: np.ndarray, box, size: int = 224, crop_scale: float = CROP_SCALE) -> np.ndarray:
    """Crop the face in ``box`` (x1, y1, x2, y2) with the original geometry, ``size``×``size`` BGR."""
    height, width = frame_bgr.shape[:2]
    return _cut(lambda top, bottom, left, right: frame_bgr[top:bottom, left:right], height, width,
                crop_window(box, crop_scale), size)


def crop_timeline_frame(frame, box, size: int = 224, crop_scale: float = CROP_SCALE) -> np.ndarray:
    """:func:`crop_face` of a :class:`~syncnet_fcn.media.TimelineFrame`, converting only the pixels under
    the crop (same result as cropping the whole converted frame)."""
    return _cut(frame.region, frame.height, frame.width, crop_window(box, crop_scale), size)


def _cut(pixels: Callable[[int, int, int, int], np.ndarray], height: int, width: int,
         window: tuple[int, int, int, int], size: int) -> np.ndarray:
    """The crop ``window`` of a ``height``×``width`` frame whose pixels ``pixels(top, bottom, left,
    right)`` returns for rectangles inside it; outside the frame the crop is ``PAD_VALUE``."""
    top, bottom, left, right = window
    crop_h, crop_w = max(1, bottom - top), max(1, right - left)
    inside_top, inside_bottom = max(top, 0), min(bottom, height)
    inside_left, inside_right = max(left, 0), min(right, width)
    if top >= 0 and left >= 0 and bottom <= height and right <= width:
        region = pixels(top, bottom, left, right)
    else:
        region = np.full((crop_h, crop_w, 3), PAD_VALUE, np.uint8)
        if inside_bottom > inside_top and inside_right > inside_left:
            region[inside_top - top:inside_bottom - top, inside_left - left:inside_right - left] = \
                pixels(inside_top, inside_bottom, inside_left, inside_right)
    return cv2.resize(region, (size, size), interpolation=cv2.INTER_LINEAR)


def _segments(tracks: Sequence, max_gap: int) -> list[tuple[int, int]]:
    """Frame ranges ``[start, stop)`` covering all tracks, merging ranges closer than ``max_gap``."""
    spans = sorted((t.start_frame, t.end_frame + 1) for t in tracks)
    merged: list[list[int]] = []
    for start, stop in spans:
        if merged and start - merged[-1][1] <= max_gap:
            merged[-1][1] = max(merged[-1][1], stop)
        else:
            merged.append([start, stop])
    return [(a, b) for a, b in merged]


def iter_track_crops(video, tracks: Sequence, *, size: int = 224, chunk: int = 128,
                     progress: Callable[[int, int], None] | None = None) -> Iterator[tuple[int, int, np.ndarray]]:
    """Yield ``(track_id, first_frame_index, crops)`` with ``crops`` ``(n, size, size, 3)`` uint8 BGR.

    One decoding pass over the frames the tracks cover (seeking over long stretches without a face)
    serves all tracks at once. Only the pixels under each crop window are converted from the decoded
    picture, at full resolution, so crops equal :func:`crop_face` on the whole frame. Each track's
    chunks come in order, consecutive and without gaps, ``chunk`` frames each except its last;
    ``first_frame_index`` is a timeline index.
    """
    tracks = [t for t in tracks if t.n_frames > 0]
    if not tracks:
        return
    chunk = max(1, int(chunk))
    info = probe(video)
    segments = _segments(tracks, _MAX_GAP_DECODED)
    total = sum(stop - start for start, stop in segments)
    buffers: dict[int, np.ndarray] = {}
    filled: dict[int, int] = {}
    first_of_chunk: dict[int, int] = {}
    done = 0
    for start, stop in segments:
        for index, frame in iter_timeline(video, start_frame=start, end_frame=stop, info=info):
            for track in tracks:
                if not track.start_frame <= index <= track.end_frame:
                    continue
                key = track.track_id
                if filled.get(key, 0) == 0:
                    remaining = track.end_frame - index + 1
                    buffers[key] = np.empty((min(chunk, remaining), size, size, 3), np.uint8)
                    first_of_chunk[key] = index
                    filled[key] = 0
                buffers[key][filled[key]] = crop_timeline_frame(frame, track.boxes[index - track.start_frame], size)
                filled[key] += 1
                if filled[key] == len(buffers[key]):
                    yield key, first_of_chunk[key], buffers.pop(key)
                    filled[key] = 0
            done += 1
            if progress is not None and done % 25 == 0:
                progress(done, total)
    if progress is not None:
        progress(done, total)


__all__ = ["CROP_SCALE", "PAD_VALUE", "crop_window", "crop_face", "crop_timeline_frame", "iter_track_crops"]
