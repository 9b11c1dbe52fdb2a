"""A live HLS stream on 127.0.0.1 made from real clips, with the sound moved by known amounts at known times.

Used by benchmarks/monitor.py and tests/test_monitor.py. :func:`render_segments` encodes a programme
(a list of :class:`Part`: which clip, how long, what sound, how far the sound is moved) into two-second
HLS segments with PyAV; :class:`LiveServer` serves them from a local ``http.server`` thread through a
playlist that grows with the clock, as a live encoder's would. It can be stopped and started again
(an outage), and its playlist can be frozen (a stalled encoder).

Shifts follow the SyncNet convention: ``shift_frames=+5`` makes a reading 5 frames higher than the
clip's own (the sound is moved 5 frames earlier), so the offset seen is ``own + shift_frames``.
"""

from __future__ import annotations

import http.server
import math
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from syncnet_fcn.media import iter_frames, load_audio

FPS = 25
RATE = 16000
SPF = RATE // FPS  # audio samples per frame


@dataclass
class Part:
    clip: str | Path
    seconds: float
    shift_frames: int = 0  # + : the sound comes earlier (reading rises by this much)
    sound: str | Path | None = "clip"  # "clip", None (silence), or another file whose sound replaces the clip's


class _Looped:
    """A clip's frames and sound, played in a loop, sound moved by whole samples."""

    def __init__(self, clip: Path, size: tuple[int, int]):
        self.frames = [_fit(img, size) for _, img in iter_frames(clip, max_side=max(size))]
        self.audio = _fit_audio(load_audio(clip), len(self.frames) * SPF)

    def frame(self, i: int) -> np.ndarray:
        return self.frames[i % len(self.frames)]


def _fit(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Letterbox ``img`` into ``size`` = (width, height)."""
    width, height = size
    scale = min(width / img.shape[1], height / img.shape[0])
    w, h = max(2, int(img.shape[1] * scale)), max(2, int(img.shape[0] * scale))
    out = np.zeros((height, width, 3), np.uint8)
    y, x = (height - h) // 2, (width - w) // 2
    out[y:y + h, x:x + w] = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    return out


def _fit_audio(audio: np.ndarray, n: int) -> np.ndarray:
    if len(audio) >= n:
        return audio[:n]
    return np.concatenate([audio, np.zeros(n - len(audio), np.int16)])


def _looped_samples(audio: np.ndarray, start: int, n: int) -> np.ndarray:
    idx = (np.arange(start, start + n) % len(audio))
    return audio[idx]


def render_segments(parts: list[Part], out_dir: str | Path, *, size: tuple[int, int] = (224, 224),
                    segment_s: float = 2.0, with_audio: bool = True) -> list[tuple[str, float]]:
    """Encode ``parts`` one after another into HLS segments in ``out_dir``; ``[(file name, seconds)]``.

    ``with_audio=False`` writes no audio stream at all (a source without sound, not a silent one).

    Each clip loops from where it last stopped, so a programme of one clip with several shifts is one
    continuous talk whose sound jumps at the part boundaries.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    clips: dict[Path, _Looped] = {}
    cursors: dict[Path, int] = {}
    sounds: dict[Path, np.ndarray] = {}
    gop = int(round(segment_s * FPS))
    playlist = out_dir / "all.m3u8"
    options = {"hls_time": f"{segment_s:g}", "hls_list_size": "0", "hls_playlist_type": "vod",
               "hls_segment_filename": str(out_dir / "seg%05d.ts")}
    with av.open(str(playlist), "w", format="hls", options=options) as out:
        video = out.add_stream("libx264", rate=FPS)
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        video.codec_context.time_base = Fraction(1, FPS)
        video.options = {"preset": "ultrafast", "g": str(gop), "keyint_min": str(gop), "sc_threshold": "0",
                         "bf": "0"}
        audio = out.add_stream("aac", rate=RATE) if with_audio else None
        if audio is not None:
            audio.layout = "mono"
        frame_index = 0
        for part in parts:
            clip = Path(part.clip)
            if clip not in clips:
                clips[clip] = _Looped(clip, size)
                cursors[clip] = 0
            looped = clips[clip]
            if part.sound is None:
                track = np.zeros(len(looped.audio), np.int16)
            elif part.sound == "clip":
                track = looped.audio
            else:
                path = Path(part.sound)
                if path not in sounds:
                    sounds[path] = load_audio(path) if path.suffix not in (".wav", ".mp3") else _sound_only(path)
                track = sounds[path]
            n = int(round(part.seconds * FPS))
            for k in range(n):
                src, index = cursors[clip] + k, frame_index
                frame_index += 1
                img = av.VideoFrame.from_ndarray(looped.frame(src), format="bgr24")
                img.pts = index
                for packet in video.encode(img):
                    out.mux(packet)
                if audio is None:
                    continue
                start = (src + part.shift_frames) * SPF if part.sound == "clip" else index * SPF
                chunk = _looped_samples(track, start, SPF)
                sound = av.AudioFrame.from_ndarray(chunk[None, :].astype(np.int16), format="s16", layout="mono")
                sound.sample_rate = RATE
                sound.pts = index * SPF
                for packet in audio.encode(sound):
                    out.mux(packet)
            cursors[clip] += n
        for packet in video.encode():
            out.mux(packet)
        for packet in audio.encode() if audio is not None else []:
            out.mux(packet)
    return _segments(playlist)


def _sound_only(path: Path) -> np.ndarray:
    """16 kHz mono int16 of an audio-only file (music)."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
    chunks = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
    chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    return np.concatenate(chunks).astype(np.int16)


def _segments(playlist: Path) -> list[tuple[str, float]]:
    segments, duration = [], None
    for line in playlist.read_text().splitlines():
        if line.startswith("#EXTINF:"):
            duration = float(line[8:].split(",")[0])
        elif line and not line.startswith("#"):
            segments.append((line, duration))
    return segments


class LiveServer:
    """Serves rendered segments on 127.0.0.1 as a live HLS playlist that grows with the clock.

    Segment *k* is published once the clock has passed its end (``speed`` × real time). The playlist
    lists the newest ``window`` segments. :meth:`stop` / :meth:`start` take the server down and up
    again on the same port; :meth:`freeze` stops the playlist from growing.
    """

    def __init__(self, directory: str | Path, segments: list[tuple[str, float]], *, speed: float = 1.0,
                 window: int = 5):
        self.directory = Path(directory)
        self.segments = segments
        self.ends = np.cumsum([d for _, d in segments])
        self.speed = speed
        self.window = window
        self.started_at: float | None = None
        self.frozen_count: int | None = None
        self.port = 0
        self._server = None
        self._thread = None
        self.requests = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/live.m3u8"

    def stream_time(self) -> float:
        return 0.0 if self.started_at is None else (time.monotonic() - self.started_at) * self.speed

    def published(self) -> int:
        count = int(np.searchsorted(self.ends, self.stream_time(), side="right"))
        return count if self.frozen_count is None else min(count, self.frozen_count)

    def freeze(self) -> None:
        self.frozen_count = self.published()

    def playlist(self) -> str:
        count = self.published()
        first = max(0, count - self.window)
        target = int(math.ceil(max(d for _, d in self.segments)))
        lines = ["#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{target}", f"#EXT-X-MEDIA-SEQUENCE:{first}"]
        for name, duration in self.segments[first:count]:
            lines += [f"#EXTINF:{duration:.3f},", name]
        if count == len(self.segments):
            lines.append("#EXT-X-ENDLIST")
        return "\n".join(lines) + "\n"

    def start(self) -> LiveServer:
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                owner.requests += 1
                name = self.path.split("?")[0].lstrip("/")
                if name == "live.m3u8":
                    body, kind = owner.playlist().encode(), "application/vnd.apple.mpegurl"
                elif name in {n for n, _ in owner.segments[: owner.published()]}:
                    body, kind = (owner.directory / name).read_bytes(), "video/mp2t"
                else:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        if self.started_at is None:
            self.started_at = time.monotonic()
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None

    def wait_published(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.published() < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.published() >= count

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
