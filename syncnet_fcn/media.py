"""Streaming media access on the 25 fps timeline.

Every video, whatever its frame rate (constant, variable, 29.97, with dropped frames), is seen through
one timeline: frame *i* is the instant ``i / 25`` s after the video stream's first frame, and audio
samples ``[640*i, 640*(i+1))`` of the 16 kHz mono track describe the same instant. Source frames are
placed on the timeline by their presentation timestamps, never by their index, so a source frame is
repeated or dropped as the timeline requires.

Frames are decoded with PyAV one at a time (decoder threads on) and converted/downscaled by swscale
only when asked for: :func:`iter_timeline` hands out decoded pictures that convert on request (the
whole frame at some size, a thumbnail, or just a rectangle at full resolution), so a pass pays for
the pixels it uses. Nothing holds a whole video in memory and nothing is written to disk.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from . import AUDIO_SAMPLE_RATE, SAMPLES_PER_FRAME, TIMELINE_FPS
from .errors import MediaError, NoAudioError, NoVideoStreamError
from .limits import MediaLimits, check_container, check_frame_size, decoder_threads

#: file endings of the video containers the toolkit looks for in a folder
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".mpg", ".mpeg", ".webm", ".m4v"})

# Demuxers that PyAV uses for still images: such a file opens as a one-frame "video".
_IMAGE_FORMATS = {"image2", "image2pipe", "gif_pipe", "webp_pipe", "apng"}
# How far before a requested start frame to seek, so the decoder has a keyframe and the frame
# nearest to the first requested instant is decoded.
_SEEK_MARGIN_S = 1.0
# Undecodable packets in a row tolerated before a stream counts as broken.
_MAX_BAD_PACKETS = 25
# Packets inspected to decide whether the frame rate is variable.
_VFR_SAMPLE_PACKETS = 300
# Upper bound on how far decode order runs ahead of presentation order (B-frame reordering).
_MAX_REORDER = 16


@dataclass
class MediaInfo:
    path: str
    duration_s: float  # of the 25 fps timeline
    n_frames: int  # frames on the 25 fps timeline
    source_fps: float | None  # average rate of the source
    width: int  # after rotation
    height: int  # after rotation
    rotation: int  # clockwise degrees applied to stored frames to display them (0/90/180/270)
    has_audio: bool
    audio_sample_rate: int | None  # of the source audio stream (load_audio always returns 16 kHz)
    variable_frame_rate: bool
    video_start_s: float = 0.0  # presentation time of the first video frame: timeline time zero
    # set when the headers promise more video than the file holds (cut short, damaged): the length the
    # headers declare; duration_s and n_frames are then what could be read
    declared_duration_s: float | None = None

    @property
    def damage_note(self) -> str | None:
        """One line saying the file is cut short, or None."""
        if self.declared_duration_s is None:
            return None
        return (f"the file is truncated or damaged: only {self.duration_s:.1f} s of its "
                f"{self.declared_duration_s:.1f} s of video could be read")


# ----------------------------------------------------------------------------------------------------
# opening and probing


def _open(path) -> av.container.InputContainer:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise MediaError(f"file not found: {path}")
    if os.path.isdir(path):
        raise MediaError(f"{path} is a directory, not a video file")
    try:
        # max_pixels: the decoders that probe the streams (avformat_find_stream_info) refuse frames above
        # the limit instead of allocating them, so a file declaring huge frames costs nothing to open
        return av.open(path, metadata_errors="ignore",
                       options={"max_pixels": str(MediaLimits.from_env().max_frame_pixels)})
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise MediaError(f"cannot open {os.path.basename(path)} as a video: {_reason(exc)}") from None


def _reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text.splitlines()[0]


def _video_stream(container, path) -> av.video.stream.VideoStream:
    name = os.path.basename(os.fspath(path))
    check_container(container, name)  # from the headers, before a frame is decoded
    if container.format.name in _IMAGE_FORMATS or container.format.name.endswith("_pipe"):
        raise NoVideoStreamError(f"{name} is a still image, not a video")
    if not container.streams.video:
        kind = "an audio-only file" if container.streams.audio else "a file without a video stream"
        raise NoVideoStreamError(f"{name} is {kind}: a video with a face is needed")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"  # frame + slice threads: decoding is the main cost of a pass
    context = stream.codec_context
    if context.width and context.height:  # each frame thread holds a frame: big frames, fewer threads
        context.thread_count = decoder_threads(context.width, context.height)
    return stream


def _decode_packets(container, stream, name: str, what: str):
    """Decoded frames of ``stream``, skipping undecodable packets (a seek can land mid-frame; files
    can be damaged) but giving up with :class:`MediaError` after many failures in a row."""
    failures = 0
    try:
        for packet in container.demux(stream):
            try:
                frames = packet.decode()
            except av.error.InvalidDataError as exc:
                failures += 1
                if failures > _MAX_BAD_PACKETS:
                    raise MediaError(f"cannot decode the {what} of {name}: {_reason(exc)}") from None
                continue
            failures = 0
            yield from frames
    except av.FFmpegError as exc:
        raise MediaError(f"cannot decode the {what} of {name}: {_reason(exc)}") from None


def _frame_time(frame, stream, fallback_index: int) -> float:
    if frame.pts is not None:
        return float(frame.pts * stream.time_base)
    rate = stream.average_rate or stream.guessed_rate or TIMELINE_FPS
    return fallback_index / float(rate)


def _rotation_cw(frame) -> int:
    """Clockwise degrees (0/90/180/270) that turn a stored frame upright, from its display matrix."""
    try:
        ccw = frame.rotation  # PyAV: counter-clockwise degrees in [-180, 180]
    except (AttributeError, ValueError):
        return 0
    return int(round(-(ccw or 0) / 90.0)) % 4 * 90


def rotate_frame(image: np.ndarray, rotation_cw: int) -> np.ndarray:
    """Turn ``image`` clockwise by ``rotation_cw`` degrees (a multiple of 90), contiguous result."""
    quarter_turns = (rotation_cw // 90) % 4
    if quarter_turns == 0:
        return image
    return np.ascontiguousarray(np.rot90(image, k=-quarter_turns))


def _stream_end_s(container, stream) -> float | None:
    """End of the video stream in seconds (last frame's pts + duration) from metadata, else packets."""
    if stream.duration:
        return float(((stream.start_time or 0) + stream.duration) * stream.time_base)
    if container.duration:
        return (container.start_time or 0) / 1e6 + container.duration / 1e6
    return None


def _scan_packets(container, stream, limit: int | None) -> tuple[list[float], float | None]:
    """Sorted presentation times of the first ``limit`` video packets and the end of the last one."""
    times, end = [], None
    for packet in container.demux(stream):
        if packet.pts is None:
            continue
        start = float(packet.pts * stream.time_base)
        times.append(start)
        stop = start + float((packet.duration or 0) * stream.time_base)
        end = stop if end is None else max(end, stop)
        if limit is not None and len(times) >= limit + _MAX_REORDER:
            break
    times.sort()
    if limit is not None and len(times) > limit:
        # Packets come in decode order: the last few presentation times may still be missing.
        times = times[:limit]
    return times, end


def _is_variable_rate(times: list[float]) -> bool:
    """Frame intervals differing by more than a quarter of the typical one: drops, gaps, VFR."""
    if len(times) < 3:
        return False
    steps = np.diff(np.asarray(times))
    steps = steps[steps > 0]
    if steps.size < 2:
        return False
    typical = float(np.median(steps))
    return bool(np.any(np.abs(steps - typical) > 0.25 * typical))


def probe(path) -> MediaInfo:
    """Describe a video on the 25 fps timeline; raises :class:`MediaError` if it cannot be decoded.

    One frame is decoded to be sure the file is a decodable video (and to read its rotation).
    """
    name = os.path.basename(os.fspath(path))
    with _open(path) as container:
        stream = _video_stream(container, path)
        first = next(_decode_packets(container, stream, name, "video"), None)
        if first is None:
            raise MediaError(f"{name} has a video stream but no decodable frame (truncated or damaged?)")
        check_frame_size(first.width, first.height, name)
        start_s = _frame_time(first, stream, 0)
        rotation = _rotation_cw(first)
        width, height = first.width, first.height
        if rotation in (90, 270):
            width, height = height, width
        audio = container.streams.audio[0] if container.streams.audio else None
        end_s = _stream_end_s(container, stream)

        try:
            container.seek(0)  # back to the start to sample packet timing
            times, packet_end = _scan_packets(container, stream, None if end_s is None else _VFR_SAMPLE_PACKETS)
        except av.FFmpegError:  # unseekable or damaged further on: timing unknown, not fatal here
            times, packet_end = [], None
        if end_s is None:
            end_s = packet_end
        declared_s = None
        if end_s is not None and end_s - start_s > _TAIL_CHECK_S and not _tail_decodes(container, stream, end_s):
            video_end, file_end = _last_packet_ends(container, stream)
            # cut short only if no stream reaches the end (video may simply stop before the sound)
            if video_end is not None and max(video_end, file_end or 0.0) < end_s - _TAIL_CHECK_S:
                declared_s, end_s = end_s - start_s, max(video_end, start_s + 1.0 / TIMELINE_FPS)
    if end_s is None or end_s <= start_s:
        # Nothing says how long the video is: count one source frame.
        rate = float(stream.average_rate or stream.guessed_rate or TIMELINE_FPS)
        end_s = start_s + 1.0 / rate
    n_frames = max(1, int(math.floor((end_s - start_s) * TIMELINE_FPS + 0.5)))
    return MediaInfo(
        path=os.fspath(path),
        duration_s=n_frames / TIMELINE_FPS,
        n_frames=n_frames,
        source_fps=float(stream.average_rate) if stream.average_rate else None,
        width=width,
        height=height,
        rotation=rotation,
        has_audio=audio is not None,
        audio_sample_rate=int(audio.rate) if audio is not None and audio.rate else None,
        variable_frame_rate=_is_variable_rate(times),
        video_start_s=start_s,
        declared_duration_s=declared_s,
    )


# A file whose last this-many seconds of video cannot be read counts as cut short.
_TAIL_CHECK_S = 1.0


def _tail_decodes(container, stream, end_s: float) -> bool:
    """Whether a video packet near the declared end can be read (a cut file fails here)."""
    try:
        container.seek(int((end_s - _TAIL_CHECK_S) / stream.time_base), stream=stream, backward=True)
        for packet in container.demux(stream):
            if packet.pts is not None and float(packet.pts * stream.time_base) >= end_s - _TAIL_CHECK_S:
                return True
    except (av.FFmpegError, EOFError, OSError):
        return False
    return False


def _last_packet_ends(container, video) -> tuple[float | None, float | None]:
    """End times of the last readable video packet and of the last readable packet of any stream,
    scanning from the start (demux only, nothing decoded)."""
    video_end = file_end = None
    try:
        container.seek(0)
        for packet in container.demux():
            if packet.pts is None or not packet.size or packet.stream.time_base is None:
                continue
            stop = float((packet.pts + (packet.duration or 0)) * packet.stream.time_base)
            file_end = stop if file_end is None else max(file_end, stop)
            if packet.stream.index == video.index:
                video_end = stop if video_end is None else max(video_end, stop)
    except (av.FFmpegError, EOFError, OSError):
        pass
    return video_end, file_end


# ----------------------------------------------------------------------------------------------------
# video frames

# 8-bit planar formats whose planes can be cut to a rectangle and converted on their own (by far the
# commonest decoder outputs); any other format converts the whole frame and slices it.
_PLANAR_8BIT = {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv440p", "yuvj440p", "yuv444p",
                "yuvj444p", "yuv411p", "yuv410p", "gray"}
# Rectangles are converted with their sides rounded up to a multiple of this, so that consecutive
# frames of a slowly moving face reuse one swscale context instead of building a new one each time.
_REGION_QUANTUM = 32


def _output_size(stored_w: int, stored_h: int, max_side: int | None) -> tuple[int, int]:
    if not max_side or max(stored_w, stored_h) <= max_side:
        return stored_w, stored_h
    scale = max_side / max(stored_w, stored_h)
    return max(1, round(stored_w * scale)), max(1, round(stored_h * scale))


class _Converters:
    """swscale contexts shared by every frame of one decoding run.

    ``VideoFrame.to_ndarray`` builds a new context for every frame, which can cost more than the
    conversion itself at HD sizes (filter set-up, thread pool); a reformatter per use keeps its
    context as long as sizes and formats stay the same.
    """

    def __init__(self):
        self._by_use: dict[str, VideoReformatter] = {}

    def bgr(self, frame, use: str, width: int | None = None, height: int | None = None,
            interpolation: str | None = None) -> np.ndarray:
        reformatter = self._by_use.get(use)
        if reformatter is None:
            reformatter = self._by_use[use] = VideoReformatter()
        # One swscale thread: the decoder's threads already use the cores, and a thread pool makes
        # every context rebuild (a crop rectangle changing size) several times dearer.
        if width is None or (width, height) == (frame.width, frame.height):
            converted = reformatter.reformat(frame, format="bgr24", threads=1)
        else:
            converted = reformatter.reformat(frame, width=width, height=height, format="bgr24",
                                             interpolation=interpolation, threads=1)
        return converted.to_ndarray()


class TimelineFrame:
    """A decoded source frame shown at one or more timeline instants, converted only on request.

    Sizes and coordinates are those of the upright (rotation-applied) frame. Conversions are cached,
    so asking twice (or at a repeated instant) costs nothing; treat the arrays as read-only.
    """

    __slots__ = ("time_s", "_frame", "_stored_size", "_rotation", "_converters", "_cache", "width", "height")

    def __init__(self, time_s: float, frame, info: MediaInfo, converters: _Converters):
        self.time_s, self._frame, self._rotation, self._converters = time_s, frame, info.rotation, converters
        self._cache: dict = {}
        self.width, self.height = info.width, info.height
        # The stream's size from probe(): a frame of another size (a mid-stream change) is scaled to it.
        self._stored_size = (info.height, info.width) if info.rotation in (90, 270) else (info.width, info.height)

    def image(self, max_side: int | None = None) -> np.ndarray:
        """The whole frame, BGR ``uint8``, downscaled (area filter) so that its longer side <= ``max_side``."""
        key = ("image", max_side)
        if key not in self._cache:
            width, height = _output_size(*self._stored_size, max_side)
            use = "full" if (width, height) == self._stored_size else "scaled"
            self._cache[key] = rotate_frame(self._converters.bgr(self._frame, use, width, height, "AREA"),
                                            self._rotation)
        return self._cache[key]

    def thumbnail(self, width: int) -> np.ndarray:
        """A small BGR copy about ``width`` pixels wide (point-sampled: cheap, for frame statistics)."""
        key = ("thumbnail", width)
        if key not in self._cache:
            stored_w, stored_h = self._stored_size
            scale = min(1.0, width / self.width)
            thumb_w, thumb_h = max(1, round(stored_w * scale)), max(1, round(stored_h * scale))
            small = self._converters.bgr(self._frame, "thumbnail", thumb_w, thumb_h, "POINT")
            self._cache[key] = rotate_frame(small, self._rotation)
        return self._cache[key]

    def region(self, top: int, bottom: int, left: int, right: int) -> np.ndarray:
        """``image()[top:bottom, left:right]`` for a rectangle inside the frame, converting only it.

        The pixels are exactly those of the whole-frame conversion: the rectangle is widened to the
        chroma grid, its planes are copied into a small frame and converted with the same colour
        settings, then trimmed.
        """
        if not (0 <= top < bottom <= self.height and 0 <= left < right <= self.width):
            raise ValueError(f"rectangle {top}:{bottom}, {left}:{right} is not inside the "
                             f"{self.width}x{self.height} frame")
        frame = self._frame
        if (("image", None) in self._cache or frame.format.name not in _PLANAR_8BIT
                or (frame.width, frame.height) != self._stored_size):
            return self.image()[top:bottom, left:right]
        s_top, s_bottom, s_left, s_right = _stored_rectangle(top, bottom, left, right, self._rotation,
                                                             frame.width, frame.height)
        pixels, (cut_top, cut_left) = self._convert_stored(s_top, s_bottom, s_left, s_right)
        pixels = pixels[s_top - cut_top:s_bottom - cut_top, s_left - cut_left:s_right - cut_left]
        return rotate_frame(pixels, self._rotation)

    def _convert_stored(self, top: int, bottom: int, left: int, right: int):
        """BGR pixels of a stored-frame rectangle grown to the chroma grid and the size quantum."""
        frame = self._frame
        planes = frame.planes
        step_x = max(round(frame.width / p.width) for p in planes)
        step_y = max(round(frame.height / p.height) for p in planes)
        cut_left, cut_top = left // step_x * step_x, top // step_y * step_y  # on the chroma grid
        width = min(frame.width - cut_left, -(-(right - cut_left) // _REGION_QUANTUM) * _REGION_QUANTUM)
        height = min(frame.height - cut_top, -(-(bottom - cut_top) // _REGION_QUANTUM) * _REGION_QUANTUM)
        part = av.VideoFrame(width, height, frame.format.name)
        for source, target in zip(planes, part.planes):
            fx, fy = round(frame.width / source.width), round(frame.height / source.height)
            rows = _plane_array(source)[cut_top // fy:cut_top // fy + target.height,
                                        cut_left // fx:cut_left // fx + target.width]
            _plane_array(target)[:rows.shape[0], :rows.shape[1]] = rows
        part.colorspace, part.color_range = frame.colorspace, frame.color_range
        return self._converters.bgr(part, "region"), (cut_top, cut_left)


def _plane_array(plane) -> np.ndarray:
    """A plane's samples as a (height, width) view of its buffer (8-bit formats)."""
    return np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[:, :plane.width]


def _stored_rectangle(top, bottom, left, right, rotation_cw, stored_w, stored_h):
    """The rectangle of the stored (unrotated) frame that turns into an upright-frame rectangle."""
    if rotation_cw == 90:
        return stored_h - right, stored_h - left, top, bottom
    if rotation_cw == 180:
        return stored_h - bottom, stored_h - top, stored_w - right, stored_w - left
    if rotation_cw == 270:
        return left, right, stored_w - bottom, stored_w - top
    return top, bottom, left, right


def _decode_from(container, stream, seek_to_s: float | None, name: str):
    """Decoded frames with their times, after an optional backward seek to ``seek_to_s``."""
    if seek_to_s is not None and seek_to_s > 0:
        container.seek(int(seek_to_s / stream.time_base), stream=stream, backward=True)
    for index, frame in enumerate(_decode_packets(container, stream, name, "video")):
        yield _frame_time(frame, stream, index), frame


def iter_timeline(path, *, start_frame: int = 0, end_frame: int | None = None, info: MediaInfo | None = None,
                  fast_decode: bool = False) -> Iterator[tuple[int, TimelineFrame]]:
    """Yield ``(timeline_index, TimelineFrame)`` for timeline frames ``start_frame .. end_frame-1``.

    Timeline instant *i* shows the source frame whose timestamp is nearest to it, so variable and
    non-25 fps sources map by time; a source frame shown at several instants is the same object.
    Nothing is converted until asked for (:meth:`TimelineFrame.image`, ``region``, ``thumbnail``).
    ``info`` saves a second :func:`probe`. ``fast_decode`` skips the in-loop deblocking filter:
    slightly blockier pixels for less decoding work, enough for finding faces, not for crops.
    """
    info = info or probe(path)
    end = info.n_frames if end_frame is None else min(int(end_frame), info.n_frames)
    start = max(0, int(start_frame))
    if start >= end:
        return
    name = os.path.basename(os.fspath(path))
    converters = _Converters()
    with _open(path) as container:
        stream = _video_stream(container, path)
        if fast_decode:
            stream.codec_context.options = {"skip_loop_filter": "all"}
        start_s = start / TIMELINE_FPS
        seek_s = info.video_start_s + start_s - _SEEK_MARGIN_S if start_s > _SEEK_MARGIN_S else None
        frames = _decode_from(container, stream, seek_s, name)
        if seek_s is not None:
            # A seek can land after the wanted instant (coarse index, odd container): decode from 0.
            head = next(frames, None)
            if head is None or head[0] - info.video_start_s > start_s:
                container.seek(0)
                frames = _decode_from(container, stream, None, name)
            else:
                frames = _chain([head], frames)

        index = start
        held = None  # the latest decoded frame
        for time_s, frame in frames:
            rel = time_s - info.video_start_s
            if held is not None:
                if rel <= held.time_s:
                    continue  # non-increasing timestamp: keep the earlier frame
                # Instants before the midpoint between the held frame and this one show the held frame.
                boundary = (held.time_s + rel) / 2.0
                while index < end and index / TIMELINE_FPS < boundary:
                    yield index, held
                    index += 1
                if index >= end:
                    return
            held = TimelineFrame(rel, frame, info, converters)
        while held is not None and index < end:  # the last frame covers the rest of the timeline
            yield index, held
            index += 1


def iter_frames(path, *, start_frame: int = 0, end_frame: int | None = None,
                max_side: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(timeline_index, BGR uint8 H×W×3)`` for timeline frames ``start_frame .. end_frame-1``.

    Timeline instant *i* shows the source frame whose timestamp is nearest to it, so variable and
    non-25 fps sources map by time. Rotation metadata is applied; ``max_side`` downscales (in swscale,
    area filter) so that ``max(H, W) <= max_side``. A late ``start_frame`` seeks instead of decoding
    from the start. Exactly ``min(end_frame, n_frames) - start_frame`` frames are yielded. Treat the
    arrays as read-only.
    """
    previous = None
    for index, frame in iter_timeline(path, start_frame=start_frame, end_frame=end_frame):
        image = frame.image(max_side)
        # A repeated source frame is handed out as a copy, so a caller that edits one is safe.
        yield index, (image.copy() if frame is previous else image)
        previous = frame


def _chain(first, rest):
    yield from first
    yield from rest


# ----------------------------------------------------------------------------------------------------
# audio


def load_audio(path, *, start_frame: int = 0, end_frame: int | None = None) -> np.ndarray:
    """int16 mono 16 kHz audio on the timeline: sample ``640*(i - start_frame)`` is timeline frame *i*.

    Audio before the video's first frame is dropped; audio starting later is preceded by zeros. With
    ``end_frame`` the result is exactly ``640*(end_frame - start_frame)`` samples (zero-padded);
    without, it runs to the end of the audio stream. Raises :class:`NoAudioError` without audio.
    """
    info = probe(path)
    name = os.path.basename(os.fspath(path))
    if not info.has_audio:
        raise NoAudioError(f"{name} has no audio track: audio-video sync needs one")
    start = max(0, int(start_frame))
    want = None if end_frame is None else max(0, int(end_frame) - start) * SAMPLES_PER_FRAME
    wanted_from_s = info.video_start_s + start / TIMELINE_FPS

    with _open(path) as container:
        stream = container.streams.audio[0]
        stream.thread_type = "AUTO"
        stream_start_s = float((stream.start_time or 0) * stream.time_base)
        # Encoders pad the last packet; the stream's duration says where the real audio ends.
        stream_end_s = stream_start_s + float(stream.duration * stream.time_base) if stream.duration else None
        sought = start / TIMELINE_FPS > _SEEK_MARGIN_S
        if sought:
            container.seek(int((wanted_from_s - _SEEK_MARGIN_S) / stream.time_base), stream=stream, backward=True)
        resampler = av.AudioResampler(format="s16", layout="mono", rate=AUDIO_SAMPLE_RATE)
        chunks: list[np.ndarray] = []
        first_s = None
        have = 0
        for frame in _decode_packets(container, stream, name, "audio"):
            if first_s is None:
                if sought:
                    frame = _align_to_output_grid(frame, stream_start_s)
                first_s = _audio_frame_time(frame, stream)
            for out in resampler.resample(frame):
                chunk = out.to_ndarray().reshape(-1)
                chunks.append(chunk)
                have += chunk.size
            if want is not None:
                # samples decoded before the wanted instant (seek margin) do not count
                before = (wanted_from_s - first_s) * AUDIO_SAMPLE_RATE
                if have > want + before + AUDIO_SAMPLE_RATE:
                    break
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))

    audio = np.concatenate(chunks).astype(np.int16, copy=False) if chunks else np.zeros(0, np.int16)
    if first_s is not None:
        if stream_end_s is not None:
            audio = audio[: max(0, int(round((stream_end_s - first_s) * AUDIO_SAMPLE_RATE)))]
        lead = int(round((first_s - wanted_from_s) * AUDIO_SAMPLE_RATE))
        if lead > 0:  # the audio starts after the wanted instant: silence before it
            audio = np.concatenate([np.zeros(lead, np.int16), audio])
        elif lead < 0:
            audio = audio[-lead:]
    if want is not None:
        if audio.size >= want:
            audio = audio[:want]
        else:
            audio = np.concatenate([audio, np.zeros(want - audio.size, np.int16)])
    return np.ascontiguousarray(audio)


def _align_to_output_grid(frame, stream_start_s: float):
    """Drop the first few samples of ``frame`` so that it starts on a 16 kHz sample of the whole stream.

    After a seek, decoding resumes at a packet boundary (1024 samples at 48 kHz is 341.33 output
    samples): resampling from there would put every output sample a fraction of a sample away from
    those of a decode from the start. Starting on an instant common to both sample grids keeps them
    identical.
    """
    rate = frame.sample_rate
    if not rate or frame.pts is None or frame.time_base is None:
        return frame
    step = rate // math.gcd(rate, AUDIO_SAMPLE_RATE)  # source samples between common instants
    offset = int(round((float(frame.pts * frame.time_base) - stream_start_s) * rate))
    drop = (-offset) % step
    if drop == 0 or drop >= frame.samples:
        return frame
    samples = frame.to_ndarray()
    channels = len(frame.layout.channels)
    samples = samples[:, drop:] if frame.format.is_planar else samples[:, drop * channels:]
    trimmed = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format=frame.format.name,
                                         layout=frame.layout.name)
    trimmed.sample_rate = rate
    trimmed.time_base = frame.time_base
    trimmed.pts = frame.pts + int(round(drop / rate / frame.time_base))
    return trimmed


def _audio_frame_time(frame, stream) -> float:
    if frame.pts is not None and frame.time_base is not None:
        return float(frame.pts * frame.time_base)
    return float((stream.start_time or 0) * stream.time_base) if stream.time_base else 0.0


def encode_audio(container, stream, samples: np.ndarray) -> None:
    """Encode mono int16 16 kHz ``samples`` into an open output ``stream`` (AAC, say) and flush it."""
    chunk = 1024  # the AAC encoder's frame size
    for start in range(0, len(samples), chunk):
        piece = samples[start:start + chunk]
        if len(piece) < chunk:
            piece = np.concatenate([piece, np.zeros(chunk - len(piece), dtype=samples.dtype)])
        frame = av.AudioFrame.from_ndarray(piece.astype(np.int16).reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = AUDIO_SAMPLE_RATE
        frame.pts = start
        frame.time_base = Fraction(1, AUDIO_SAMPLE_RATE)
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def shift_audio(audio: np.ndarray, frames: float) -> np.ndarray:
    """Delay (``frames > 0``) or advance (``< 0``) by ``round(frames*640)`` samples; same length, zeros in.

    Delaying the audio by *S* frames moves a SyncNet reading from *B* to *B − S*.
    """
    audio = np.asarray(audio)
    shift = int(round(frames * SAMPLES_PER_FRAME))
    out = np.zeros_like(audio)
    if shift == 0:
        out[:] = audio
    elif abs(shift) < audio.shape[0]:
        if shift > 0:
            out[shift:] = audio[:-shift]
        else:
            out[:shift] = audio[-shift:]
    return out


def track_audio(audio: np.ndarray, start_frame: int, n_frames: int) -> np.ndarray:
    """Samples of timeline frames ``start_frame … start_frame + n_frames − 1``, zero-padded past the end."""
    start, stop = start_frame * SAMPLES_PER_FRAME, (start_frame + n_frames) * SAMPLES_PER_FRAME
    span = np.asarray(audio[start:stop])
    if len(span) < stop - start:
        span = np.concatenate([span, np.zeros(stop - start - len(span), dtype=span.dtype)])
    return span


def videos_in(folder: str | os.PathLike) -> list[Path]:
    """The video files directly inside ``folder``, sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())


def prefetched(items: Iterator, depth: int = 2) -> Iterator:
    """``items``, produced by a background thread up to ``depth`` ahead.

    Decoding and cropping (PyAV and swscale work without the GIL) then overlap with what the caller
    does with each item (face mesh, network), on the second core. An exception in the producer is
    raised here; a caller that stops early stops the producer too.
    """
    import queue
    import threading

    buffer: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()
    end = object()

    def offer(entry) -> bool:
        while not stop.is_set():
            try:
                buffer.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for item in items:
                if not offer((item, None)):
                    return
            offer((end, None))
        except BaseException as exc:  # handed to the consumer, raised there
            offer((end, exc))

    worker = threading.Thread(target=produce, name="prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item, error = buffer.get()
            if item is end:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        worker.join()
        close = getattr(items, "close", None)
        if close is not None:
            close()


__all__ = ["MediaInfo", "TimelineFrame", "VIDEO_SUFFIXES", "probe", "iter_timeline", "iter_frames", "load_audio",
           "shift_audio", "rotate_frame", "videos_in", "prefetched"]
