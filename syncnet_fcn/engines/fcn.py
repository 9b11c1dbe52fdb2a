"""FCN-SyncNet: the same weights, run fully convolutionally.

The video stream runs once over each pushed chunk (with the 4-frame overlap carried between chunks)
instead of over 5× copies of every frame; the audio stream runs once over the track's whole MFCC
sequence instead of once per window; the offset search is one batched correlation. The audio stream's
zero padding sees real neighbouring audio here, so its embeddings differ slightly from the windowed
ones; a calibration fitted by ``syncnet-fcn calibrate`` and stored beside the weights corrects that.
"""

from __future__ import annotations

import numpy as np
import torch

from .calibration import FCNCalibration, load_calibration, load_thresholds
from ..model import FullyConvSyncNet, SyncNet, load_model
from ..weights import resolve_weights
from .base import OpenTrackScorer, SyncEngine, TrackScorer
from .syncnet import OpenWindowedScorer, ThresholdsMixin, WindowedTrackScorer


class _FCNScorer(WindowedTrackScorer):
    #: windows per video pass: bounds the first layer's activations (about 130 MB at 224×224)
    batch_windows = 32
    #: on a GPU: fills it better, about 1 GB of first-layer activations at 224×224
    gpu_batch_windows = 256

    def __init__(self, engine: "FCNEngine", audio, n_frames, max_offset):
        super().__init__(engine.model, audio, n_frames, max_offset, engine.device)
        self.fcn = engine.fcn
        self.calibration = engine.calibration
        self.calibration_note = engine.calibration_note
        self.runtime = engine.runtime
        if str(engine.device).startswith("cuda"):
            self.batch_windows = self.gpu_batch_windows

    def _embed_video(self, frames: torch.Tensor, count: int) -> torch.Tensor:
        return self.fcn.video_embeddings(frames)[:count]

    def _embed_audio(self, n_windows: int) -> torch.Tensor:
        columns = torch.from_numpy(self.mfcc)[None, None].to(self.device)
        return self.fcn.audio_embeddings(columns)[:n_windows]

    def _distances(self, video: torch.Tensor, audio: torch.Tensor) -> np.ndarray:
        dists = super()._distances(video, audio)
        if self.calibration is not None:
            dists = self.calibration.apply_to_distances(dists)
        return dists

    def _extra(self) -> dict:
        return {"fcn_calibration": self.calibration_note, "runtime": self.runtime}


class _MultiAudioScorer:
    """One track read against several audios: the video stream runs once, each audio is searched alone."""

    def __init__(self, scorers: list[_FCNScorer]):
        self.scorers = scorers

    def push(self, crops: np.ndarray) -> None:
        self.scorers[0].push(crops)

    def finish(self) -> list:
        lead = self.scorers[0]
        for other in self.scorers[1:]:
            # the video side does not depend on the audio (tensors are never changed in place)
            other._video, other._buffer = list(lead._video), lead._buffer
            other._next_window, other._frames_seen = lead._next_window, lead._frames_seen
            other._window_limit = min(other._window_limit, lead._window_limit)
            other.timings.update({k: lead.timings[k] for k in ("prepare_s", "video_s")})
        return [scorer.finish() for scorer in self.scorers]


class FCNEngine(ThresholdsMixin, SyncEngine):
    """``fcn``: FCN-SyncNet on SyncNet weights (any member of the family), calibrated when possible."""

    name = "fcn"

    def __init__(
        self,
        model: SyncNet,
        weights: str | None = None,
        device: str = "cpu",
        calibration: FCNCalibration | None = None,
        calibration_note: str | None = None,
        keep_embeddings: bool = False,
        thresholds: dict | None = None,
        runtime: str = "torch",
        int8: bool = False,
    ):
        self.model = model.to(device).eval()
        self.thresholds = dict(thresholds or {})
        self.device = device
        self.weights = weights
        self.keep_embeddings = keep_embeddings
        self.calibration = calibration
        self.calibration_note = calibration_note or ("none" if calibration is None else "applied")
        head = calibration.audio_head(device) if calibration is not None else None
        if runtime == "onnx":
            from ..onnx_syncnet import OnnxFullyConvSyncNet

            self.fcn = OnnxFullyConvSyncNet.load(self.model, weights, int8=int8, audio_head=head)
            self.runtime = "onnx int8" if int8 else "onnx"
        else:
            self.fcn = FullyConvSyncNet(self.model, audio_head=head)
            self.runtime = f"torch {device}"

    @classmethod
    def from_weights(cls, weights: str | None, device: str = "cpu", runtime: str = "torch",
                     int8: bool = False) -> "FCNEngine":
        path = resolve_weights(weights)
        model = load_model(path, device)
        calibration, note = load_calibration(path, model)
        return cls(model, weights=str(path), device=device, calibration=calibration, calibration_note=note,
                   thresholds=load_thresholds(path, cls.name), runtime=runtime, int8=int8)

    def start_track(self, audio: np.ndarray, n_frames: int, max_offset: int = 15) -> TrackScorer:
        return self._configure(_FCNScorer(self, audio, n_frames, max_offset))

    def open_track(self, max_offset: int = 15) -> OpenTrackScorer:
        """Video windows embedded while the track is still being followed; audio once it has ended."""
        return OpenWindowedScorer(self._configure(_FCNScorer(self, None, None, max_offset)))

    def start_tracks_multi_audio(self, audios, n_frames: int, max_offset: int = 15) -> _MultiAudioScorer:
        """A scorer reading one track against each of ``audios`` (same length), embedding the video once."""
        return _MultiAudioScorer([self.start_track(audio, n_frames, max_offset) for audio in audios])
