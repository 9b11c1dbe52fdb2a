"""Repair an out-of-sync video: move its audio by the measured (or given) offset, keep everything else.

    result = fix_video("talk.mp4", "talk.fixed.mp4")          # measure, shift, re-measure
    result.before.offset_frames, result.after.offset_frames   # e.g. +7 → 0

The audio is shifted at sample level in its own sample rate (``offset × rate / 25`` samples): a
reading of *B* frames (audio early by *B*) is corrected by delaying the audio *B* frames, with silence
in at the start and the same amount trimmed at the end, so the audio keeps its length. The video
stream and every other stream are copied packet for packet (never re-encoded); the shifted audio is
re-encoded with the input's codec, sample rate, layout and bit rate; container and stream metadata
are kept. The output is written to a temporary file beside it and renamed into place; the input is
never written to.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from . import TIMELINE_FPS
from .errors import InvalidArgumentError, MediaError, NoAudioError, NoFaceError, SyncNetError

#: the decoder's name → the encoder to write the same codec with, where the two differ
_ENCODERS = {"mp3float": "libmp3lame", "mp3": "libmp3lame", "opus": "libopus", "vorbis": "vorbis"}
#: containers whose muxer records an encoder's priming samples (edit list, codec delay)
EDIT_LIST_FORMATS = {"mp4", "mov", "ipod", "3gp", "3g2", "ismv", "matroska", "webm"}
MAX_SHIFT_FRAMES = 250  # 10 s: anything larger is not an offset but a different recording


class UnreliableReadingError(SyncNetError):
    """The measured offset is not trustworthy enough to act on."""

    code = "unreliable_reading"
    http_status = 422


@dataclass
class FixResult:
    input: Path
    output: Path
    shift_frames: int  # the audio was delayed by this many frames (negative: advanced)
    offset_given: bool  # the shift came from the caller, not from the reading
    before: object | None  # SyncReport of the input (None: no face to read)
    after: object | None  # SyncReport of the output
    audio_codec: str
    copied_streams: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        def reading(report):
            if report is None:
                return None
            return {"offset_frames": report.offset_frames, "confidence": report.confidence,
                    "min_dist": report.min_dist, "reliable": bool(report.main and report.main.sync.reliable),
                    "note": report.main.sync.note if report.main else None}

        return {"input": self.input.name, "output": self.output.name, "shift_frames": self.shift_frames,
                "shift_seconds": round(self.shift_frames / TIMELINE_FPS, 3), "offset_given": self.offset_given,
                "before": reading(self.before), "after": reading(self.after), "audio_codec": self.audio_codec,
                "copied_streams": self.copied_streams}


#: progress(stage, fraction): "measuring", "writing", "re-measuring"
FixProgress = Callable[[str, float], None]


def fix_video(video: str | os.PathLike, out: str | os.PathLike, *, offset: int | None = None, force: bool = False,
              pipeline=None, tracks: list | None = None, progress: FixProgress | None = None) -> FixResult:
    """Measure ``video``, write ``out`` with the audio moved to sync, and measure ``out``.

    ``offset``: the audio-video offset to correct (SyncNet convention, positive = audio early) instead
    of the reading. Without it an unreliable reading raises :class:`UnreliableReadingError` unless
    ``force``. ``tracks``: the video's face tracks when already known (they are the output's too: its
    video is the input's). Raises :class:`InvalidArgumentError` when ``out`` is the input.
    """
    video, out = Path(video), Path(out)
    _check_paths(video, out)
    given = offset is not None
    if offset is not None and abs(int(offset)) > MAX_SHIFT_FRAMES:
        raise InvalidArgumentError(f"--offset must be within ±{MAX_SHIFT_FRAMES} frames, got {offset}")
    if pipeline is None:
        from .pipeline import SyncPipeline

        pipeline = SyncPipeline(engine="auto")

    def stage(name, start=0.0, end=1.0):
        if progress is None:
            return None
        return lambda _stage, fraction: progress(name, start + (end - start) * fraction)

    if tracks is None:
        tracks = pipeline.find_tracks(video, progress=stage("measuring", 0.0, 0.5))
    before = None
    if tracks:
        before = pipeline.run(video, tracks=tracks, progress=stage("measuring", 0.5, 1.0))
    if offset is None:
        if before is None:
            raise NoFaceError(f"no face track found in {video.name}: nothing to measure (give --offset N)")
        main = before.main
        if not main.sync.reliable and not force:
            raise UnreliableReadingError(
                f"the reading of {video.name} is unreliable ({main.sync.note or 'low confidence'}: offset "
                f"{main.sync.offset_frames:+d} frames, confidence {main.sync.confidence:.2f}); not fixing it. "
                "Give --offset N to apply a known offset, or --force to apply this one anyway")
        offset = int(before.offset_frames)
    if progress is not None:
        progress("writing", 0.0)
    codec, copied = write_shifted(video, out, int(offset))
    if progress is not None:
        progress("writing", 1.0)
    after = pipeline.run(out, tracks=tracks, progress=stage("re-measuring")) if tracks else None
    return FixResult(video, out, int(offset), given, before, after, codec, copied)


def _check_paths(video: Path, out: Path) -> None:
    if not video.exists():
        raise InvalidArgumentError(f"no such file: {video}")
    if video.is_dir():
        raise InvalidArgumentError(f"{video} is a directory, not a video file")
    if out.resolve() == video.resolve() or (out.exists() and os.path.samefile(out, video)):
        raise InvalidArgumentError("the output would overwrite the input video; choose another -o")
    if out.is_dir():
        raise InvalidArgumentError(f"-o {out} is a directory; give a file name")


# -- writing ------------------------------------------------------------------------------------------------


def write_shifted(video: str | os.PathLike, out: str | os.PathLike, delay_frames: int) -> tuple[str, list[str]]:
    """Write ``out``: ``video`` with its first audio stream delayed by ``delay_frames`` (negative:
    advanced), every other stream copied packet for packet. Returns ``(audio encoder, copied streams)``."""
    video, out = Path(video), Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=out.parent, prefix=f".{out.stem}.", suffix=f".part{out.suffix}")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        result = _remux(video, tmp, delay_frames)
        os.replace(tmp, out)
        return result
    except av.FFmpegError as exc:
        raise MediaError(f"cannot write {out.name}: {exc}") from exc
    finally:
        tmp.unlink(missing_ok=True)


def _remux(video: Path, tmp: Path, delay_frames: int) -> tuple[str, list[str]]:
    try:
        source = av.open(str(video))
    except av.FFmpegError as exc:
        raise MediaError(f"cannot open {video.name}: {exc}") from None
    with source:
        if not source.streams.audio:
            raise NoAudioError(f"{video.name} has no audio track: nothing to shift")
        if not source.streams.video:
            raise MediaError(f"{video.name} has no video stream")
        audio_in = source.streams.audio[0]
        with av.open(str(video)) as again:  # a second reader: the copy below starts from the top
            samples, first_s = _decode_audio(again, again.streams.audio[0])
        rate = audio_in.codec_context.sample_rate
        shifted = shift_samples(samples, round(delay_frames * rate / TIMELINE_FPS))

        with av.open(str(tmp), "w") as sink:
            sink.metadata.update(source.metadata)
            mapping, copied = {}, []
            for stream in source.streams:
                if stream is audio_in:
                    continue
                try:
                    copy = sink.add_stream_from_template(stream)
                except (ValueError, av.FFmpegError):
                    continue  # a stream the output container cannot hold (e.g. attachments): left out
                copy.metadata.update(stream.metadata)
                mapping[stream.index] = copy
                copied.append(f"{stream.type}:{stream.codec_context.name}")
            audio_out, encoder = _audio_stream_like(sink, audio_in)
            # An encoder's first samples are priming (its packets start before zero). Containers with
            # edit lists record that and players skip it; in the others (AVI, MPEG) the muxer would move
            # every stream later instead, so there the audio is fed that much early and starts at zero.
            priming = 0 if sink.format.name in EDIT_LIST_FORMATS else encoder_priming(audio_out)
            audio_packets = _encode(audio_out, shifted[:, priming:], round(first_s * rate) + priming,
                                    layout=audio_in.codec_context.layout.name)
            pending = next(audio_packets, None)
            last_dts: dict[int, int] = {}
            for packet in source.demux([s for s in source.streams if s.index in mapping]):
                if packet.dts is None:
                    continue  # the demuxer's end-of-stream marker
                when = float(packet.dts * packet.time_base)
                while pending is not None and _time(pending) <= when:
                    sink.mux(pending)
                    pending = next(audio_packets, None)
                index = packet.stream.index
                if index in last_dts and packet.dts <= last_dts[index]:
                    # some demuxers repeat a dts (MPEG-PS after a stream start); muxers refuse that, so the
                    # repeat moves one tick on. The payload is untouched.
                    packet.dts = last_dts[index] + 1
                    if packet.pts is not None and packet.pts < packet.dts:
                        packet.pts = packet.dts
                last_dts[index] = packet.dts
                packet.stream = mapping[index]
                sink.mux(packet)
            while pending is not None:
                sink.mux(pending)
                pending = next(audio_packets, None)
    return encoder, copied


def _audio_stream_like(sink, audio_in):
    context = audio_in.codec_context
    encoder = _ENCODERS.get(context.name, context.name)
    try:
        stream = sink.add_stream(encoder, rate=context.sample_rate, layout=context.layout.name)
    except (ValueError, av.FFmpegError) as exc:
        raise MediaError(f"cannot re-encode the audio as {context.name}: {exc}") from None
    if context.bit_rate:
        stream.codec_context.bit_rate = context.bit_rate
    stream.time_base = Fraction(1, context.sample_rate)
    stream.metadata.update(audio_in.metadata)
    return stream, encoder


def _decode_audio(source, stream) -> tuple[np.ndarray, float]:
    """The whole stream as float32 ``(channels, samples)`` in its own rate and layout, and the time of
    its first sample."""
    context = stream.codec_context
    resampler = av.AudioResampler(format="fltp", layout=context.layout.name, rate=context.sample_rate)
    chunks, first_s = [], None
    for packet in source.demux(stream):
        try:
            frames = packet.decode()
        except av.FFmpegError:
            continue  # a damaged packet: its samples are lost, as any player would lose them
        for frame in frames:
            if first_s is None:
                first_s = float(frame.pts * frame.time_base) if frame.pts is not None else 0.0
            chunks.extend(out.to_ndarray() for out in resampler.resample(frame))
    chunks.extend(out.to_ndarray() for out in resampler.resample(None))
    if not chunks:
        raise NoAudioError(f"the audio track of {Path(source.name).name} holds no samples")
    samples = np.concatenate(chunks, axis=1).astype(np.float32, copy=False)
    if stream.duration and stream.time_base:  # encoders pad the last frame; the stream says where sound ends
        samples = samples[:, : max(1, round(float(stream.duration * stream.time_base) * context.sample_rate))]
    return samples, first_s or 0.0


def shift_samples(samples: np.ndarray, delay: int) -> np.ndarray:
    """``samples`` (channels, n) delayed by ``delay`` samples (negative: advanced); same length, silence in."""
    out = np.zeros_like(samples)
    n = samples.shape[1]
    if delay >= 0:
        if delay < n:
            out[:, delay:] = samples[:, : n - delay]
    elif -delay < n:
        out[:, : n + delay] = samples[:, -delay:]
    return out


def encoder_priming(stream) -> int:
    """How many samples before zero the first packet of ``stream``'s encoder starts (0 for most codecs)."""
    context = stream.codec_context
    probe = av.CodecContext.create(context.name, "w")
    probe.sample_rate, probe.layout, probe.format = context.sample_rate, context.layout, context.format
    probe.time_base = Fraction(1, context.sample_rate)
    if context.bit_rate:
        probe.bit_rate = context.bit_rate
    frame = av.AudioFrame(format=context.format.name, layout=context.layout.name, samples=max(context.frame_size, 1024))
    for plane in frame.planes:
        plane.update(bytes(plane.buffer_size))
    frame.sample_rate, frame.pts, frame.time_base = context.sample_rate, 0, probe.time_base
    packets = probe.encode(frame) + probe.encode(None)
    first = min((p.pts for p in packets if p.pts is not None), default=0)
    return max(0, -int(first))


def _encode(stream, samples: np.ndarray, first_pts: int, layout: str, chunk: int = 4096) -> Iterator:
    frame_size = stream.codec_context.frame_size
    if frame_size and samples.shape[1] % frame_size:  # a last partial frame would be dropped: pad it
        samples = np.pad(samples, ((0, 0), (0, frame_size - samples.shape[1] % frame_size)))
    for start in range(0, samples.shape[1], chunk):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, start:start + chunk]), format="fltp",
                                           layout=layout)
        frame.sample_rate = stream.codec_context.sample_rate
        frame.time_base = Fraction(1, frame.sample_rate)
        frame.pts = first_pts + start
        yield from stream.encode(frame)
    yield from stream.encode(None)


def _time(packet) -> float:
    stamp = packet.dts if packet.dts is not None else packet.pts
    return float(stamp * packet.time_base) if stamp is not None else 0.0


# -- checks (tests and benchmarks) --------------------------------------------------------------------------


def video_packets_digest(path: str | os.PathLike) -> tuple[str, int]:
    """``(sha256 over the first video stream's packet payloads in file order, packet count)``."""
    digest, count = hashlib.sha256(), 0
    with av.open(str(path)) as container:
        for packet in container.demux(container.streams.video[0]):
            if packet.size:
                digest.update(bytes(packet))
                count += 1
    return digest.hexdigest(), count


def stream_durations(path: str | os.PathLike) -> dict[str, float]:
    """Seconds from the first packet's start to the last packet's end, for the first video and audio stream."""
    spans: dict[str, list[float]] = {}
    with av.open(str(path)) as container:
        streams = [s for s in (container.streams.video[:1] + container.streams.audio[:1])]
        for packet in container.demux(streams):
            if packet.pts is None:
                continue
            start = float(packet.pts * packet.time_base)
            end = start + float((packet.duration or 0) * packet.time_base)
            span = spans.setdefault(packet.stream.type, [start, end])
            span[0], span[1] = min(span[0], start), max(span[1], end)
    return {kind: round(end - start, 4) for kind, (start, end) in spans.items()}
