"""Bad and awkward inputs, built on the fly from a real clip with PyAV and numpy (no ffmpeg binary).

``build_corpus(folder, clip)`` writes every case into ``folder`` and returns ``{kind: path}``. Files
are small (a second or two of a 224×224 clip) so the suite stays quick; the huge-frame cases declare
big frames but hold only a couple of them.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

FPS = 25
RATE = 16000


def _source(clip: Path, seconds: float) -> tuple[list[np.ndarray], np.ndarray]:
    from syncnet_fcn.media import iter_frames, load_audio

    n = int(seconds * FPS)
    frames = [img for _, img in iter_frames(clip, end_frame=n)]
    audio = load_audio(clip, end_frame=n)
    return frames, audio


def write_media(path: Path, frames=None, audio=None, *, fps=FPS, rate=RATE, layout="mono", video_codec=None,
                audio_codec="aac", pix_fmt="yuv420p", audio_streams=1, rotation=None, frame_times=None,
                audio_rate_in=RATE, options=None, container_options=None) -> Path:
    """Encode BGR ``frames`` and int16 mono ``audio`` (resampled to ``rate``/``layout``) into ``path``."""
    with av.open(str(path), "w", options=container_options or {}) as out:
        video = None
        if frames is not None:
            frames = list(frames)
            codec = video_codec or ("libx264" if path.suffix in (".mp4", ".mkv", ".mov", ".ts") else "mpeg4")
            video = out.add_stream(codec, rate=fps)
            video.height, video.width = frames[0].shape[:2]
            video.pix_fmt = pix_fmt
            if frame_times is not None:
                video.codec_context.time_base = Fraction(1, 1000)
            if options:
                video.options = options
            if rotation is not None:
                video.metadata["rotate"] = str(rotation)
        audios = []
        if audio is not None:
            for _ in range(audio_streams):
                stream = out.add_stream(audio_codec, rate=rate)
                stream.layout = layout
                audios.append(stream)
        if video is not None:
            for index, image in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")
                if frame_times is not None:
                    frame.pts, frame.time_base = int(frame_times[index] * 1000), Fraction(1, 1000)
                else:
                    frame.pts, frame.time_base = index, Fraction(1, fps)
                for packet in video.encode(frame):
                    out.mux(packet)
            for packet in video.encode():
                out.mux(packet)
        for stream in audios:
            resampler = av.AudioResampler(format=stream.codec_context.format or "fltp", layout=layout, rate=rate)
            block = 1024
            for start in range(0, len(audio), block):
                piece = audio[start:start + block].astype(np.int16).reshape(1, -1)
                frame = av.AudioFrame.from_ndarray(piece, format="s16", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = audio_rate_in, start, Fraction(1, audio_rate_in)
                for converted in resampler.resample(frame):
                    for packet in stream.encode(converted):
                        out.mux(packet)
            for converted in resampler.resample(None):
                for packet in stream.encode(converted):
                    out.mux(packet)
            for packet in stream.encode():
                out.mux(packet)
    return path


def _blank(width, height, n, level=0):
    return [np.full((height, width, 3), level, np.uint8) for _ in range(n)]


def _resize(images, width, height):
    import cv2

    return [cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA) for img in images]


def _grid(images, k):
    return [np.ascontiguousarray(np.tile(img[::k, ::k], (k, k, 1))[:img.shape[0], :img.shape[1]]) for img in images]


def _cut(source: Path, target: Path, fraction: float) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[:int(len(data) * fraction)])
    return target


def _corrupt_middle(source: Path, target: Path) -> Path:
    data = bytearray(source.read_bytes())
    rng = np.random.default_rng(7)
    start, stop = len(data) // 3, 2 * len(data) // 3
    data[start:stop] = rng.integers(0, 256, stop - start, dtype=np.uint8).tobytes()
    target.write_bytes(bytes(data))
    return target


def build_corpus(folder: Path, clip: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    frames, audio = _source(clip, 2.0)
    short_frames, short_audio = frames[:FPS], audio[:RATE]
    silent = np.zeros_like(short_audio)
    rng = np.random.default_rng(0)
    cases: dict[str, Path] = {}

    def add(kind: str, path: Path) -> None:
        cases[kind] = path

    f = folder
    good = write_media(f / "good.mp4", frames, audio)
    add("empty", f / "empty.mp4")
    cases["empty"].write_bytes(b"")
    add("random_bytes", f / "random.mp4")
    cases["random_bytes"].write_bytes(rng.integers(0, 256, 40_000, dtype=np.uint8).tobytes())
    add("text_as_video", f / "notes.avi")
    cases["text_as_video"].write_text("this is not a video\n" * 100)
    add("truncated_30pct_avi", _cut(clip, f / "truncated30.avi", 0.3))
    add("truncated_moov_last", _cut(good, f / "truncated_moov_last.mp4", 0.6))
    faststart = write_media(f / "faststart.mp4", frames, audio, container_options={"movflags": "faststart"})
    add("truncated_30pct_faststart", _cut(faststart, f / "truncated30_faststart.mp4", 0.3))
    add("truncated_header", _cut(good, f / "truncated_head.mp4", 0.01))
    add("corrupt_middle", _corrupt_middle(good, f / "corrupt_middle.mp4"))
    add("audio_only", write_media(f / "audio_only.m4a", None, audio))
    add("audio_only_wav", write_media(f / "audio_only.wav", None, short_audio, audio_codec="pcm_s16le"))
    add("video_only", write_media(f / "video_only.mp4", short_frames, None))
    import cv2

    png = f / "still.png"
    cv2.imwrite(str(png), frames[0])
    add("image_png", png)
    jpg = f / "still.jpg"
    cv2.imwrite(str(jpg), frames[0])
    add("image_jpg_named_mp4", jpg.rename(f / "still_jpg.mp4"))
    add("gif", write_media(f / "anim.gif", short_frames[:5], None, video_codec="gif", pix_fmt="rgb8"))
    add("one_frame", write_media(f / "one_frame.mp4", frames[:1], audio[:640]))
    add("short_0_3s", write_media(f / "short.mp4", frames[:8], audio[:8 * 640]))
    add("audio_8khz", write_media(f / "audio8k.mp4", frames, audio, rate=8000))
    add("audio_5_1", write_media(f / "surround.mp4", frames, audio, layout="5.1"))
    add("fps_60", write_media(f / "fps60.mp4", [img for img in frames for _ in (0, 1)][:120], audio, fps=60))
    add("fps_1", write_media(f / "fps1.mp4", frames[::25], audio, fps=1))
    times = np.cumsum(np.where(np.arange(len(frames)) % 3 == 0, 0.06, 0.03))
    times = times - times[0]
    add("variable_frame_rate", write_media(f / "vfr.mkv", frames, audio[:int((times[-1] + 0.04) * RATE)],
                                           frame_times=times))
    add("rotated_90", write_media(f / "rotated.mp4", frames, audio, rotation=90))
    add("uhd_4k", write_media(f / "uhd.mp4", _resize(frames[:10], 3840, 2160), audio[:10 * 640],
                              options={"preset": "ultrafast"}))
    add("huge_8192", write_media(f / "huge.mkv", _blank(8192, 8192, 2), audio[:2 * 640],
                                 options={"preset": "ultrafast"}))
    add("extreme_aspect_4096x16", write_media(f / "wide.mp4", _blank(4096, 16, 2), audio[:1280]))
    add("tiny_16x16", write_media(f / "tiny.mp4", _resize(short_frames, 16, 16), short_audio))
    add("odd_size_225x223", write_media(f / "odd.mkv", _resize(short_frames, 225, 223), short_audio, pix_fmt="yuv444p"))
    add("no_face", write_media(f / "no_face.mp4", _blank(224, 224, FPS, 90), short_audio))
    add("noise_frames", write_media(f / "noise.mp4", [rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
                                                      for _ in range(FPS)], short_audio))
    add("faces_3x3", write_media(f / "faces3x3.mp4", _grid(frames, 3), audio))
    add("silent", write_media(f / "silent.mp4", short_frames, silent))
    add("audio_much_longer", write_media(f / "long_audio.mp4", frames[:FPS],
                                         np.tile(audio, 15)))  # 30 s of sound, 1 s of picture
    add("video_much_longer", write_media(f / "long_video.mp4", frames, audio[:RATE // 5]))
    add("two_audio_streams", write_media(f / "two_audio.mkv", frames, audio, audio_streams=2))
    add("many_streams", write_media(f / "many_streams.mkv", frames[:5], audio[:3200], audio_streams=40,
                                    audio_codec="pcm_s16le"))
    add("yuv444", write_media(f / "yuv444.mp4", frames, audio, pix_fmt="yuv444p"))
    add("mpeg_ts", write_media(f / "stream.ts", frames, audio))
    add("webm_vp9_opus", write_media(f / "clip.webm", short_frames, short_audio, video_codec="libvpx-vp9",
                                     audio_codec="libopus", rate=48000, options={"deadline": "realtime",
                                                                                   "cpu-used": "8"}))
    add("wrong_extension", f / "really_mp4.avi")
    cases["wrong_extension"].write_bytes(good.read_bytes())
    add("no_extension", f / "video_without_suffix")
    cases["no_extension"].write_bytes(good.read_bytes())
    odd = f / "-odd name 'quoted' ü \u200b;rm.mp4"
    odd.write_bytes(good.read_bytes())
    add("odd_name", odd)
    long_name = f / ("n" * 240 + ".mp4")
    long_name.write_bytes(good.read_bytes())
    add("long_name", long_name)
    link = f / "link.mp4"
    os.symlink(good, link)
    add("symlink", link)
    dangling = f / "dangling.mp4"
    os.symlink(f / "missing_target.mp4", dangling)
    add("broken_symlink", dangling)
    directory = f / "a_folder.mp4"
    directory.mkdir()
    add("directory", directory)
    add("missing", f / "does_not_exist.mp4")
    return cases
