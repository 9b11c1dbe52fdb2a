"""The original SyncNet method: 5-frame video windows and 0.2 s MFCC windows, embedded window by window.

Faithful to the original evaluation: windows ``0 … min(frames, samples // 640) - 6``, batches of 20
windows (each a 5-frame copy), one MFCC slice per window; then the original's distances, offset,
confidence and per-frame confidence (:mod:`syncnet_fcn.scoring`). Crops stream in: only the frames not
yet consumed by a window are held.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ..audio import mfcc, mfcc_windows, usable_windows
from ..model import SyncNet, load_model, prepare_video, video_windows
from ..scoring import offset_axis, pairwise_distance_matrix, summarize
from ..weights import resolve_weights
from .base import OpenTrackScorer, SyncEngine, TrackScorer, TrackSync


class WindowedTrackScorer(TrackScorer):
    """Buffers prepared frames and embeds windows as they become complete.

    Subclasses say how a run of consecutive windows is embedded (:meth:`_embed_video`), how the audio
    embeddings are made (:meth:`_embed_audio`), and how many ready windows make a batch.
    """

    batch_windows = 20
    #: put the raw embeddings into ``TrackSync.extra`` (benchmarks, calibration, tests)
    keep_embeddings = False

    #: confidence below which a reading is flagged unreliable (None: not known for these weights)
    reliable_confidence: float | None = None

    def __init__(self, model: SyncNet, audio: np.ndarray | None, n_frames: int | None, max_offset: int, device: str):
        if max_offset < 1:
            raise ValueError("max_offset must be at least 1 frame")
        self.model = model
        self.config = model.config
        self.device = device
        self.max_offset = int(max_offset)
        self.timings = {"prepare_s": 0.0, "mfcc_s": 0.0, "video_s": 0.0, "audio_s": 0.0, "search_s": 0.0}
        self._frames_seen = 0
        self._buffer: torch.Tensor | None = None  # (1, C, t, H, W), frames from self._next_window on
        self._next_window = 0
        self._video: list[torch.Tensor] = []
        # None: an open track (audio and length come with finish_track), see _embed_ready
        self._window_limit: int | None = None
        if audio is not None:
            self._set_track(audio, n_frames)

    def _set_track(self, audio: np.ndarray, n_frames: int) -> None:
        audio = np.asarray(audio)
        if audio.ndim != 1:
            raise ValueError(f"track audio must be mono samples (1-D), got shape {audio.shape}")
        self.audio = audio.astype(np.int16, copy=False)
        self.n_frames = int(n_frames)
        # windows beyond the declared track or its audio are never needed
        self._window_limit = usable_windows(self.n_frames, len(self.audio))
        start = time.perf_counter()
        self.mfcc = mfcc(self.audio)
        self.timings["mfcc_s"] += time.perf_counter() - start

    def finish_track(self, audio: np.ndarray, n_frames: int) -> TrackSync:
        """:meth:`finish` of an open track (made with ``audio=None``): its audio and length are known now."""
        self._set_track(audio, n_frames)
        return self.finish()

    def close(self) -> None:
        self._buffer, self._video = None, []

    # streaming -----------------------------------------------------------------------------------
    #: crops converted to float at a time, so a large pushed chunk does not become one huge tensor
    prepare_frames = 64

    def push(self, crops: np.ndarray) -> None:
        for first in range(0, len(crops), self.prepare_frames):
            self._push_part(crops[first : first + self.prepare_frames])

    def _push_part(self, crops: np.ndarray) -> None:
        self._frames_seen += len(crops)
        if self._window_limit is not None and self._next_window >= self._window_limit:
            return  # every window the track's audio allows is embedded already
        start = time.perf_counter()
        frames = prepare_video(crops, self.config).to(self.device)
        self.timings["prepare_s"] += time.perf_counter() - start
        self._buffer = frames if self._buffer is None else torch.cat([self._buffer, frames], dim=2)
        self._embed_ready(final=False)

    def _embed_ready(self, final: bool) -> None:
        while self._buffer is not None:
            if self._window_limit is None:
                # Open track: its last window is not known. A track's own audio span leaves the last
                # frame's window out (usable_windows: frames - 5), so a batch waits for one frame more
                # than its windows need: batches then fall where a known track's do, and the
                # embeddings (and readings) are the same bit for bit.
                ready = self._buffer.shape[2] - 5
            else:
                ready = min(self._buffer.shape[2] - 4, self._window_limit - self._next_window)
            if ready <= 0 or (ready < self.batch_windows and not final):
                break
            count = min(ready, self.batch_windows)
            start = time.perf_counter()
            with torch.inference_mode():
                self._video.append(self._embed_video(self._buffer[:, :, : count + 4], count).cpu())
            self.timings["video_s"] += time.perf_counter() - start
            self._next_window += count
            self._buffer = self._buffer[:, :, count:]  # keeps the 4-frame overlap with the next window

    # to implement --------------------------------------------------------------------------------
    def _embed_video(self, frames: torch.Tensor, count: int) -> torch.Tensor:
        """``(1, C, count + 4, H, W)`` → ``(count, D)`` embeddings of the windows starting at each frame."""
        raise NotImplementedError

    def _embed_audio(self, n_windows: int) -> torch.Tensor:
        """``(n_windows, D)`` audio embeddings of windows ``0 … n_windows - 1``."""
        raise NotImplementedError

    def _distances(self, video: torch.Tensor, audio: torch.Tensor) -> np.ndarray:
        return pairwise_distance_matrix(video, audio, self.max_offset)

    def _extra(self) -> dict:
        return {}

    # result --------------------------------------------------------------------------------------
    def finish(self) -> TrackSync:
        self._window_limit = min(self._window_limit, usable_windows(self._frames_seen, len(self.audio)))
        self._embed_ready(final=True)
        self._buffer = None
        n_windows = min(self._next_window, self._window_limit)
        if n_windows < 1:
            return self._too_short()
        video = torch.cat(self._video)[:n_windows]
        self._video = []  # the chunks are in ``video`` now; a long track's would otherwise be held twice
        start = time.perf_counter()
        with torch.inference_mode():
            audio = self._embed_audio(n_windows).cpu()
        self.timings["audio_s"] += time.perf_counter() - start
        start = time.perf_counter()
        dists = self._distances(video, audio)
        result = summarize(dists, self.max_offset, n_frames=self._frames_seen)
        self.timings["search_s"] += time.perf_counter() - start
        result.extra.update({"n_windows": n_windows, "timings": dict(self.timings), **self._extra()})
        threshold = self.reliable_confidence
        if threshold is not None and not result.confidence >= threshold:
            result.reliable = False
            result.note = (
                f"no reliable sync: confidence {result.confidence:.3f} is below {threshold:.3f}, the most "
                "these weights give a face paired with another voice; this face is not speaking, or the "
                "voice is not its own"
            )
        if self.keep_embeddings:
            result.extra.update({"video_embeddings": video.numpy(), "audio_embeddings": audio.numpy()})
        return result

    def _too_short(self) -> TrackSync:
        frames = min(self._frames_seen, len(self.audio) // 640)
        return TrackSync(
            offset_frames=0,
            confidence=0.0,
            min_dist=None,
            per_frame_confidence=np.zeros(self._frames_seen, dtype=np.float32),
            offsets=offset_axis(self.max_offset),
            offset_curve=np.full(2 * self.max_offset + 1, np.nan),
            reliable=False,
            note=f"track too short for a 5-frame window with audio: {frames} usable frames (needs at least 6)",
            extra={"n_windows": 0, **self._extra()},
        )


class OpenWindowedScorer(OpenTrackScorer):
    """A :class:`WindowedTrackScorer` made without audio, as an :class:`OpenTrackScorer`: the video
    windows are embedded as crops come, the audio side once the track is known."""

    def __init__(self, scorer: WindowedTrackScorer):
        self.scorer = scorer

    def push(self, crops: np.ndarray) -> None:
        self.scorer.push(crops)

    def finish(self, audio: np.ndarray, n_frames: int) -> TrackSync:
        return self.scorer.finish_track(audio, n_frames)

    def close(self) -> None:
        self.scorer.close()


class _SlidingWindowScorer(WindowedTrackScorer):
    batch_windows = 20  # the original's batch size

    def _embed_video(self, frames: torch.Tensor, count: int) -> torch.Tensor:
        return self.model.forward_video(video_windows(frames, 0, count))

    def _embed_audio(self, n_windows: int) -> torch.Tensor:
        embeddings = []
        for first in range(0, n_windows, self.batch_windows):
            count = min(self.batch_windows, n_windows - first)
            windows = mfcc_windows(self.mfcc[:, 4 * first :], count)
            embeddings.append(self.model.forward_audio(torch.from_numpy(windows).to(self.device)))
        return torch.cat(embeddings)


class ThresholdsMixin:
    """Reliability and speaking thresholds measured for the weights (``syncnet-fcn thresholds``);
    without a measurement nothing is flagged and the official network's scale is assumed."""

    thresholds: dict = {}

    @property
    def speaking_threshold(self) -> float:
        return float(self.thresholds.get("speaking_threshold", SyncEngine.speaking_threshold))

    @property
    def relative_speaking_threshold(self) -> float | None:
        value = self.thresholds.get("relative_speaking_threshold")
        return None if value is None else float(value)

    def _configure(self, scorer: WindowedTrackScorer) -> WindowedTrackScorer:
        scorer.keep_embeddings = self.keep_embeddings
        scorer.reliable_confidence = self.thresholds.get("reliable_confidence")
        return scorer


class SlidingWindowEngine(ThresholdsMixin, SyncEngine):
    """``syncnet``: the original sliding-window evaluation."""

    name = "syncnet"

    def __init__(self, model: SyncNet, weights: str | None = None, device: str = "cpu", keep_embeddings: bool = False,
                 thresholds: dict | None = None):
        self.model = model.to(device).eval()
        self.device = device
        self.weights = weights
        self.keep_embeddings = keep_embeddings
        self.thresholds = dict(thresholds or {})

    @classmethod
    def from_weights(cls, weights: str | None, device: str = "cpu") -> "SlidingWindowEngine":
        from .calibration import load_thresholds

        path = resolve_weights(weights)
        return cls(load_model(path, device), weights=str(path), device=device,
                   thresholds=load_thresholds(path, cls.name))

    def start_track(self, audio: np.ndarray, n_frames: int, max_offset: int = 15) -> TrackScorer:
        return self._configure(_SlidingWindowScorer(self.model, audio, n_frames, max_offset, self.device))

    def open_track(self, max_offset: int = 15) -> OpenTrackScorer:
        return OpenWindowedScorer(self._configure(_SlidingWindowScorer(self.model, None, None, max_offset, self.device)))
