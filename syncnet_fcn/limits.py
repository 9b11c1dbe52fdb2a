"""What one video may cost, checked from the container's headers before anything is decoded.

A few hundred kilobytes of video can declare frames of 8192×8192 pixels (200 MB each once decoded
to BGR) or hours of sound; such a file is refused before its first frame is decoded, with a message
that names the limit and the environment variable that raises it. The defaults let real footage
through: 4K (and DCI 4K) frames, portrait or landscape, up to six hours, a few dozen streams.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .errors import InvalidArgumentError, MediaTooLargeError

#: decoded frames are budgeted this many bytes in flight (decoder threads each hold one frame)
DECODE_BUDGET_BYTES = 256 * 2**20


@dataclass(frozen=True)
class MediaLimits:
    max_frame_pixels: int = 4096 * 2304  # 4K UHD (3840×2160) and DCI 4K (4096×2160), either way up
    max_duration_s: float = 6 * 3600.0
    max_streams: int = 32

    ENV = {
        "max_frame_pixels": "SYNCNET_FCN_MAX_FRAME_PIXELS",
        "max_duration_s": "SYNCNET_FCN_MAX_DURATION_S",
        "max_streams": "SYNCNET_FCN_MAX_STREAMS",
    }

    @classmethod
    def from_env(cls) -> "MediaLimits":
        """The defaults, with any of the ``SYNCNET_FCN_MAX_*`` variables read over them."""
        values = {}
        for field_name, variable in cls.ENV.items():
            raw = os.environ.get(variable)
            if raw is None or not raw.strip():
                continue
            try:
                number = float(raw)
            except ValueError:
                number = -1.0
            if not number > 0:
                raise InvalidArgumentError(f"{variable} must be a positive number, got {raw!r}")
            values[field_name] = number if field_name == "max_duration_s" else int(number)
        return cls(**values)


def check_container(container, name: str, limits: MediaLimits | None = None) -> None:
    """Refuse (:class:`MediaTooLargeError`) a file whose headers declare more than ``limits`` allow."""
    limits = limits or MediaLimits.from_env()
    env = MediaLimits.ENV
    streams = len(container.streams)
    if streams > limits.max_streams:
        raise MediaTooLargeError(
            f"{name} has {streams} streams, more than the limit of {limits.max_streams} "
            f"(set {env['max_streams']} to raise it)")
    for stream in container.streams.video:
        check_frame_size(stream.codec_context.width, stream.codec_context.height, name, limits)
    duration_s = declared_duration_s(container)
    if duration_s is not None and duration_s > limits.max_duration_s:
        raise MediaTooLargeError(
            f"{name} lasts {_clock(duration_s)}, longer than the limit of {_clock(limits.max_duration_s)} "
            f"(set {env['max_duration_s']} to a number of seconds to raise it)")


def check_frame_size(width: int | None, height: int | None, name: str, limits: MediaLimits | None = None) -> None:
    """Refuse frames above the pixel limit (unknown sizes, 0, pass: the first decoded frame is checked)."""
    limits = limits or MediaLimits.from_env()
    if width and height and width * height > limits.max_frame_pixels:
        raise MediaTooLargeError(
            f"{name} has frames of {width}×{height} pixels, more than the limit of "
            f"{limits.max_frame_pixels / 1e6:.1f} megapixels (4K) "
            f"(set {MediaLimits.ENV['max_frame_pixels']} to raise it)")


def declared_duration_s(container) -> float | None:
    """The longest duration any header declares (container or stream), in seconds."""
    found = []
    if container.duration:
        found.append(container.duration / 1e6)
    for stream in container.streams:
        if stream.duration and stream.time_base:
            found.append(float(stream.duration * stream.time_base))
    return max(found) if found else None


def decoder_threads(width: int, height: int, cores: int | None = None) -> int:
    """Decoder threads for frames of this size: each frame thread holds a frame, so big frames get
    fewer threads and the frames in flight stay within :data:`DECODE_BUDGET_BYTES`; never more than
    ``cores`` (default: the process's CPU budget, :mod:`syncnet_fcn.cpu_budget`)."""
    from .cpu_budget import cpu_threads

    cores = cores or cpu_threads()
    frame_bytes = max(1, width * height) * 3  # decoded picture plus reference/working copies, roughly
    return max(1, min(cores, DECODE_BUDGET_BYTES // frame_bytes))


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
