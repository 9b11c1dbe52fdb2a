"""Long test programmes with a known truth, second by second, composed from real clips.

A programme is a list of :class:`Part` s played one after another. Each part shows one clip's frames
(or one still frame, or a blank frame for "no face"), letterboxed onto a common canvas, optionally
beside a second clip (two faces side by side), and plays a clip's audio (its own, another's for a
voice off screen, or silence), optionally delayed by a whole number of frames. :func:`compose`
encodes it with PyAV (H.264 + AAC), streaming: no part is held whole in memory. The truth per
frame is who is heard (or None) and the offset injected.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

SAMPLES_PER_FRAME = 640


@dataclass
class Part:
    video: Path | None  # None: a blank frame (nothing on screen)
    n_frames: int
    start_frame: int = 0
    audio: Path | None | str = "own"  # "own", another file (voice off screen), or None (silence)
    audio_start_frame: int = 0
    shift_frames: int = 0  # delay the audio by this many frames (reading moves by -shift)
    still: bool = False  # show the video's first frame only (a face that does not speak)
    beside: Path | None = None  # a second, silent face on the right
    speaker: str | None = None  # truth: who is heard
    on_screen: str | None = None  # truth: who is seen (left face)


def _fit(image: np.ndarray, width: int, height: int) -> np.ndarray:
    scale = min(width / image.shape[1], height / image.shape[0])
    resized = cv2.resize(image, (max(1, int(image.shape[1] * scale)), max(1, int(image.shape[0] * scale))),
                         interpolation=cv2.INTER_AREA)
    canvas = np.zeros((height, width, 3), np.uint8)
    top, left = (height - resized.shape[0]) // 2, (width - resized.shape[1]) // 2
    canvas[top:top + resized.shape[0], left:left + resized.shape[1]] = resized
    return canvas


def _frames(path: Path | None, start: int, n: int, still: bool):
    from syncnet_fcn.media import iter_frames, probe

    if path is None:
        while True:
            yield None
    length = probe(path).n_frames
    if still:
        image = next(iter_frames(path, start_frame=start, end_frame=start + 1))[1]
        while True:
            yield image
    while True:  # loop the clip if the part is longer
        for _, image in iter_frames(path, start_frame=start, end_frame=min(length, start + n)):
            yield image
        start = 0


def _audio(part: Part) -> np.ndarray:
    from syncnet_fcn.media import load_audio, probe, shift_audio

    n = part.n_frames * SAMPLES_PER_FRAME
    source = part.video if part.audio == "own" else part.audio
    if source is None:
        return np.zeros(n, np.int16)
    start = part.start_frame if part.audio == "own" else part.audio_start_frame
    length = probe(source).n_frames
    audio = load_audio(source, start_frame=start, end_frame=min(length, start + part.n_frames))
    audio = np.resize(audio, n) if len(audio) else np.zeros(n, np.int16)
    return shift_audio(audio, part.shift_frames) if part.shift_frames else audio


def compose(parts: list[Part], out: Path, size: tuple[int, int] = (640, 360), crf: int = 23) -> Path:
    """Encode the programme to ``out`` (H.264 + AAC, 25 fps, ``size`` = width, height)."""
    import av

    from syncnet_fcn.media import encode_audio

    width, height = size
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.stem + ".part" + out.suffix)
    audio_parts = []
    with av.open(str(partial), "w") as container:
        video = container.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.codec_context.time_base = Fraction(1, 25)
        video.options = {"preset": "veryfast", "crf": str(crf)}
        sound = container.add_stream("aac", rate=16000)
        sound.layout = "mono"
        index = 0
        for part in parts:
            left = _frames(part.video, part.start_frame, part.n_frames, part.still)
            right = _frames(part.beside, 0, part.n_frames, False) if part.beside else None
            for _ in range(part.n_frames):
                image = next(left)
                if right is not None:
                    half = (width // 2) & ~1
                    canvas = np.hstack([_fit(image, half, height), _fit(next(right), width - half, height)])
                elif image is None:
                    canvas = np.full((height, width, 3), 40, np.uint8)
                else:
                    canvas = _fit(image, width, height)
                frame = av.VideoFrame.from_ndarray(canvas, format="bgr24")
                frame.pts = index
                for packet in video.encode(frame):
                    container.mux(packet)
                index += 1
            audio_parts.append(_audio(part))
        for packet in video.encode():
            container.mux(packet)
        encode_audio(container, sound, np.concatenate(audio_parts))
    partial.rename(out)
    return out


def truth(parts: list[Part]) -> tuple[list, np.ndarray]:
    """Per frame: who is heard (None: nobody) and the injected offset change in frames (-shift)."""
    speakers, offsets = [], []
    for part in parts:
        speakers += [part.speaker] * part.n_frames
        offsets += [-part.shift_frames] * part.n_frames
    return speakers, np.array(offsets)


__all__ = ["Part", "compose", "truth"]
