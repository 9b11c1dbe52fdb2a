"""Streaming media access on the 25 fps timeline.

Every video, whatever its frame rate (constant, variable, 29.97, with dropped frames), is seen through
one timeline: frame *i* is the instant ``i / 25`` s after the video stream's first frame, and audio
samples ``[640*i, 640*(i+1))`` of the 16 kHz mono track describe the same instant. Source frames are
placed on the timeline by their presentation timestamps, never by their index, so a source frame is
repeated or dropped as the timeline requires.

Frames are decoded with PyAV one at a time (decoder threads on) and converted/downscaled by swscale;
nothing holds a whole video in memory and nothing is written to disk.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Iterator

import av
import numpy as np

from . import AUDIO_SAMPLE_RATE, SAMPLES_PER_FRAME, TIMELINE_FPS
from .errors import MediaError, NoAudioError, NoVideoStreamError

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


# ----------------------------------------------------------------------------------------------------
# opening and probing


def _open(path) -> av.container.InputContainer:
    path = os.fspath(path)
    if not os.path.exists(path):
        raise MediaError(f"file not found: {path}")
    if os.path.isdir(path):
        raise MediaError(f"{path} is a directory, not a video file")
    try:
        return av.open(path, metadata_errors="ignore")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise MediaError(f"cannot open {os.path.basename(path)} as a video: {_reason(exc)}") from None


def _reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text.splitlines()[0]


def _video_stream(container, path) -> av.video.stream.VideoStream:
    name = os.path.basename(os.fspath(path))
    if container.format.name in _IMAGE_FORMATS or container.format.name.endswith("_pipe"):
        raise NoVideoStreamError(f"{name} is a still image, not a video")
    if not container.streams.video:
        kind = "an audio-only file" if container.streams.audio else "a file without a video stream"
        raise NoVideoStreamError(f"{name} is {kind}: a video with a face is needed")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"  # frame + slice threads: decoding is the main cost of a pass
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
            raise MediaError(f"{name} has a video stream but no decodable frame")
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
    )


# ----------------------------------------------------------------------------------------------------
# video frames


def _output_size(stored_w: int, stored_h: int, max_side: int | None) -> tuple[int, int]:
    if not max_side or max(stored_w, stored_h) <= max_side:
        return stored_w, stored_h
    scale = max_side / max(stored_w, stored_h)
    return max(1, round(stored_w * scale)), max(1, round(stored_h * scale))


def _decode_from(container, stream, seek_to_s: float | None, name: str):
    """Decoded frames with their times, after an optional backward seek to ``seek_to_s``."""
    if seek_to_s is not None and seek_to_s > 0:
        container.seek(int(seek_to_s / stream.time_base), stream=stream, backward=True)
    for index, frame in enumerate(_decode_packets(container, stream, name, "video")):
        yield _frame_time(frame, stream, index), frame


def iter_frames(path, *, start_frame: int = 0, end_frame: int | None = None,
                max_side: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(timeline_index, BGR uint8 H×W×3)`` for timeline frames ``start_frame .. end_frame-1``.

    Timeline instant *i* shows the source frame whose timestamp is nearest to it, so variable and
    non-25 fps sources map by time. Rotation metadata is applied; ``max_side`` downscales (in swscale,
    area filter) so that ``max(H, W) <= max_side``. A late ``start_frame`` seeks instead of decoding
    from the start. Exactly ``min(end_frame, n_frames) - start_frame`` frames are yielded. Treat the
    arrays as read-only.
    """
    info = probe(path)
    end = info.n_frames if end_frame is None else min(int(end_frame), info.n_frames)
    start = max(0, int(start_frame))
    if start >= end:
        return
    name = os.path.basename(os.fspath(path))
    with _open(path) as container:
        stream = _video_stream(container, path)
        stored_w, stored_h = (info.height, info.width) if info.rotation in (90, 270) else (info.width, info.height)
        out_w, out_h = _output_size(stored_w, stored_h, max_side)

        def convert(frame) -> np.ndarray:
            if (frame.width, frame.height) == (out_w, out_h):
                image = frame.to_ndarray(format="bgr24")
            else:
                image = frame.to_ndarray(format="bgr24", width=out_w, height=out_h, interpolation="AREA")
            return rotate_frame(image, info.rotation)

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
                if rel <= held.time:
                    continue  # non-increasing timestamp: keep the earlier frame
                # Instants before the midpoint between the held frame and this one show the held frame.
                boundary = (held.time + rel) / 2.0
                while index < end and index / TIMELINE_FPS < boundary:
                    yield index, held.image(convert)
                    index += 1
                if index >= end:
                    return
            held = _HeldFrame(rel, frame)
        while held is not None and index < end:  # the last frame covers the rest of the timeline
            yield index, held.image(convert)
            index += 1


class _HeldFrame:
    """A decoded frame waiting for its timeline instants: converted once, copied when repeated."""

    __slots__ = ("time", "frame", "converted", "uses")

    def __init__(self, time: float, frame):
        self.time, self.frame, self.converted, self.uses = time, frame, None, 0

    def image(self, convert) -> np.ndarray:
        if self.converted is None:
            self.converted = convert(self.frame)
        self.uses += 1
        return self.converted if self.uses == 1 else self.converted.copy()


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


__all__ = ["MediaInfo", "probe", "iter_frames", "load_audio", "shift_audio", "rotate_frame"]
