"""The SyncNet family: one definition, configured; the official network is one setting.

:class:`SyncNet` keeps the original's four ``nn.Sequential`` blocks (``netcnnaud``, ``netfcaud``,
``netcnnlip``, ``netfclip``) with the same layer positions, so the official ``syncnet_v2.model`` state
dict loads by its keys. :class:`FullyConvSyncNet` runs the same parameters fully convolutionally: the
video stream once over a whole clip, the audio stream once over a whole MFCC sequence, the fully
connected heads as 1×1 convolutions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import WeightsError

REGIONS = ("face", "lower_face", "mouth")
CROP_SIZE = 224  # side of the crops every engine receives

#: Fractions of the crop (rows top, bottom; columns left, right) each region keeps. The crop's face box
#: centre lies at 0.36 of its height; mediapipe's boxes put the mouth about 0.15–0.25 of the crop below
#: it, right on the middle line, so ``lower_face`` (the bottom half) loses the upper lip or the whole
#: mouth on tightly framed faces (LRS2, VoxCeleb2, LRW). ``mouth`` keeps nose tip to chin with the
#: mouth inside on every corpus, at the 1:2 shape of the light member's input.
REGION_BOUNDS = {
    "face": (0.0, 1.0, 0.0, 1.0),
    "lower_face": (0.5, 1.0, 0.0, 1.0),
    "mouth": (0.3, 0.75, 0.05, 0.95),
}


@dataclass(frozen=True)
class SyncNetConfig:
    """One member of the SyncNet family.

    ``video_widths`` / ``audio_widths`` are the output channels of the six convolutions of each stream;
    each head is ``Linear(w6, w6) → BN → ReLU → Linear(w6, embedding_dim)``. ``pixel_scale`` multiplies
    the 0–255 pixel values (the official network takes them raw).
    """

    name: str
    image_size: tuple[int, int] = (224, 224)
    in_channels: int = 3
    region: str = "face"
    video_widths: tuple[int, ...] = (96, 256, 256, 256, 256, 512)
    audio_widths: tuple[int, ...] = (64, 192, 384, 256, 256, 512)
    embedding_dim: int = 1024
    pixel_scale: float = 1.0

    def __post_init__(self):
        object.__setattr__(self, "image_size", tuple(int(v) for v in self.image_size))
        object.__setattr__(self, "video_widths", tuple(int(v) for v in self.video_widths))
        object.__setattr__(self, "audio_widths", tuple(int(v) for v in self.audio_widths))
        if self.region not in REGIONS:
            raise ValueError(f"region must be one of {REGIONS}, got {self.region!r}")
        if self.in_channels not in (1, 3):
            raise ValueError(f"in_channels must be 1 (grey) or 3 (BGR), got {self.in_channels}")
        if len(self.video_widths) != 6 or len(self.audio_widths) != 6:
            raise ValueError("video_widths and audio_widths need six channel counts each")
        video_final_kernel(self.image_size)  # raises when the image is too small for the stream

    @classmethod
    def official(cls) -> "SyncNetConfig":
        """The published network: 224×224 BGR whole-face crops, raw pixel values."""
        return cls(name="syncnet_v2")

    @classmethod
    def light(cls) -> "SyncNetConfig":
        """A member that trains on a 2-core CPU: grey mouth band (nose tip to chin) at 64×128, narrow channels."""
        return cls(
            name="syncnet_light",
            image_size=(64, 128),
            in_channels=1,
            region="mouth",
            # the widths of the shipped checkpoint (checkpoints/README.md): ~0.95 M parameters
            video_widths=(24, 48, 64, 64, 64, 256),
            audio_widths=(32, 64, 96, 64, 64, 256),
            embedding_dim=256,
            pixel_scale=1.0 / 255.0,
        )

    def to_dict(self) -> dict:
        data = asdict(self)
        for key in ("image_size", "video_widths", "audio_widths"):
            data[key] = list(data[key])
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "SyncNetConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown SyncNetConfig fields: {', '.join(unknown)}")
        return cls(**data)


def _conv_out(size: int, kernel: int, stride: int, padding: int = 0) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def video_final_kernel(image_size: tuple[int, int]) -> tuple[int, int]:
    """Spatial size reaching the last video conv, which becomes its kernel (6×6 for 224×224)."""
    sizes = []
    for side in image_size:
        side = _conv_out(side, 7, 2)  # conv1
        side = _conv_out(side, 3, 2)  # pool1
        side = _conv_out(side, 5, 2, 1)  # conv2
        side = _conv_out(side, 3, 2, 1)  # pool2
        side = _conv_out(side, 3, 2)  # pool3 (convs 3–5 keep the size)
        if side < 1:
            raise ValueError(f"image size {tuple(image_size)} is too small for the SyncNet video stream")
        sizes.append(side)
    return tuple(sizes)


def _audio_trunk(widths: tuple[int, ...]) -> nn.Sequential:
    w1, w2, w3, w4, w5, w6 = widths
    return nn.Sequential(
        nn.Conv2d(1, w1, kernel_size=3, padding=1),
        nn.BatchNorm2d(w1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=1, stride=1),  # a no-op kept so the layer indices match the original
        nn.Conv2d(w1, w2, kernel_size=3, padding=1),
        nn.BatchNorm2d(w2),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=(1, 2)),
        nn.Conv2d(w2, w3, kernel_size=3, padding=1),
        nn.BatchNorm2d(w3),
        nn.ReLU(inplace=True),
        nn.Conv2d(w3, w4, kernel_size=3, padding=1),
        nn.BatchNorm2d(w4),
        nn.ReLU(inplace=True),
        nn.Conv2d(w4, w5, kernel_size=3, padding=1),
        nn.BatchNorm2d(w5),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(kernel_size=3, stride=2),
        nn.Conv2d(w5, w6, kernel_size=(5, 4)),  # 13×20 MFCC reaches here as 5×4
        nn.BatchNorm2d(w6),
        nn.ReLU(inplace=True),
    )


def _video_trunk(in_channels: int, widths: tuple[int, ...], final_kernel: tuple[int, int]) -> nn.Sequential:
    w1, w2, w3, w4, w5, w6 = widths
    return nn.Sequential(
        # the only temporal kernel: 5 frames, no temporal padding
        nn.Conv3d(in_channels, w1, kernel_size=(5, 7, 7), stride=(1, 2, 2)),
        nn.BatchNorm3d(w1),
        nn.ReLU(inplace=True),
        nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2)),
        nn.Conv3d(w1, w2, kernel_size=(1, 5, 5), stride=(1, 2, 2), padding=(0, 1, 1)),
        nn.BatchNorm3d(w2),
        nn.ReLU(inplace=True),
        nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
        nn.Conv3d(w2, w3, kernel_size=(1, 3, 3), padding=(0, 1, 1)),
        nn.BatchNorm3d(w3),
        nn.ReLU(inplace=True),
        nn.Conv3d(w3, w4, kernel_size=(1, 3, 3), padding=(0, 1, 1)),
        nn.BatchNorm3d(w4),
        nn.ReLU(inplace=True),
        nn.Conv3d(w4, w5, kernel_size=(1, 3, 3), padding=(0, 1, 1)),
        nn.BatchNorm3d(w5),
        nn.ReLU(inplace=True),
        nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2)),
        nn.Conv3d(w5, w6, kernel_size=(1, *final_kernel)),
        nn.BatchNorm3d(w6),
        nn.ReLU(inplace=True),
    )


def _head(width: int, embedding_dim: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(width, width),
        nn.BatchNorm1d(width),
        nn.ReLU(inplace=True),
        nn.Linear(width, embedding_dim),
    )


class SyncNet(nn.Module):
    """Two streams embedding 5-frame face windows and 0.2 s MFCC windows into one space."""

    def __init__(self, config: SyncNetConfig | None = None):
        super().__init__()
        self.config = config or SyncNetConfig.official()
        cfg = self.config
        self.netcnnaud = _audio_trunk(cfg.audio_widths)
        self.netfcaud = _head(cfg.audio_widths[-1], cfg.embedding_dim)
        self.netcnnlip = _video_trunk(cfg.in_channels, cfg.video_widths, video_final_kernel(cfg.image_size))
        self.netfclip = _head(cfg.video_widths[-1], cfg.embedding_dim)

    def forward_audio(self, mfcc_windows: torch.Tensor) -> torch.Tensor:
        """``(n, 1, 13, 20)`` MFCC windows → ``(n, D)``."""
        features = self.netcnnaud(mfcc_windows)
        return self.netfcaud(features.reshape(features.shape[0], -1))

    def forward_video(self, clips: torch.Tensor) -> torch.Tensor:
        """``(n, C, 5, H, W)`` windows of prepared frames → ``(n, D)``."""
        features = self.netcnnlip(clips)
        return self.netfclip(features.reshape(features.shape[0], -1))

    def forward(self, clips: torch.Tensor, mfcc_windows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward_video(clips), self.forward_audio(mfcc_windows)


def prepare_video(crops_uint8_bgr: np.ndarray, config: SyncNetConfig) -> torch.Tensor:
    """``(n, 224, 224, 3)`` uint8 BGR crops → ``(1, C, n, H, W)`` float input of ``config``'s video stream."""
    crops = np.asarray(crops_uint8_bgr)
    if crops.ndim != 4 or crops.shape[-1] != 3:
        raise ValueError(f"crops must be (n, H, W, 3) BGR, got shape {crops.shape}")
    top, bottom, left, right = REGION_BOUNDS[config.region]
    rows, cols = crops.shape[1:3]
    crops = crops[:, int(round(top * rows)) : int(round(bottom * rows)), int(round(left * cols)) : int(round(right * cols))]
    height, width = config.image_size
    if crops.shape[1:3] != (height, width):
        import cv2

        crops = np.stack([cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA) for frame in crops])
    frames = torch.from_numpy(np.ascontiguousarray(crops)).float()  # (n, H, W, 3)
    if config.in_channels == 1:
        # ITU-R BT.601 luma from BGR, as OpenCV's BGR2GRAY
        frames = frames @ torch.tensor([0.114, 0.587, 0.299]).unsqueeze(1)
    if config.pixel_scale != 1.0:
        frames = frames * config.pixel_scale
    return frames.permute(3, 0, 1, 2).unsqueeze(0).contiguous()


def video_windows(clip: torch.Tensor, start: int, count: int) -> torch.Tensor:
    """``(count, C, 5, H, W)`` copies of the 5-frame windows starting at frames ``start …`` of a clip."""
    return torch.stack([clip[0, :, i : i + 5] for i in range(start, start + count)])


class AudioStream(nn.Module):
    """An audio stream on its own (``netcnnaud`` + ``netfcaud``, same keys as in :class:`SyncNet`)."""

    def __init__(self, config: SyncNetConfig):
        super().__init__()
        self.netcnnaud = _audio_trunk(config.audio_widths)
        self.netfcaud = _head(config.audio_widths[-1], config.embedding_dim)

    @classmethod
    def copy_of(cls, net: SyncNet) -> "AudioStream":
        stream = cls(net.config)
        stream.load_state_dict({k: v for k, v in net.state_dict().items() if k.startswith(("netcnnaud.", "netfcaud."))})
        return stream.to(next(net.parameters()).device).eval()


class FullyConvSyncNet(nn.Module):
    """The same parameters as a :class:`SyncNet`, run fully convolutionally.

    Nothing is copied: convolutions and heads read the wrapped network's parameters (the Linear weights
    viewed as 1×1 kernels), BatchNorm uses the running statistics (eval mode). ``audio_head`` replaces
    the audio head's last layer (``weight (D, w6)``, ``bias (D,)``) when a calibration provides one.
    """

    #: MFCC columns of context either side of an audio chunk: the audio stream's receptive field reaches
    #: 8 columns before a window and 7 after it, so 16 keeps every kept output exact.
    AUDIO_CHUNK_HALO = 16

    def __init__(
        self,
        net: SyncNet,
        audio_head: tuple[torch.Tensor, torch.Tensor] | None = None,
        audio_stream: AudioStream | None = None,
    ):
        super().__init__()
        self.net = net
        self.audio_head = audio_head
        # a calibration may bring its own (distilled) audio stream; the video stream is always the net's
        self.audio_stream = audio_stream

    @property
    def config(self) -> SyncNetConfig:
        return self.net.config

    # video ---------------------------------------------------------------------------------------
    def video_embeddings(self, clip: torch.Tensor) -> torch.Tensor:
        """``(1, C, T, H, W)`` → ``(T - 4, D)``, equal to the 5-frame windowed embeddings.

        The first layer is the only one with a temporal kernel (5, no padding) and every later layer
        has a temporal kernel of 1, so the unchanged 3-D trunk run over the whole clip yields one
        feature per 5-frame window, without the windowed method's five copies of every frame.
        """
        if clip.shape[0] != 1:
            raise ValueError("video_embeddings takes one clip (batch of 1)")
        features = self.net.netcnnlip(clip)  # (1, w6, T-4, 1, 1)
        features = features[0, :, :, 0, 0].transpose(0, 1)[..., None, None]  # (T-4, w6, 1, 1)
        return _head_as_conv(self.net.netfclip, features)

    # audio ---------------------------------------------------------------------------------------
    def audio_features(self, mfcc: torch.Tensor, chunk_columns: int = 8000) -> torch.Tensor:
        """Penultimate audio features ``(n, w6)`` (after the head's BN+ReLU), one per 4 MFCC columns.

        ``mfcc`` is ``(1, 1, 13, L)``; output *m* covers columns ``4m … 4m+19``. Long inputs run in chunks
        with :attr:`AUDIO_CHUNK_HALO` columns of context, which gives the same values as one pass.
        """
        n_out = max(0, (mfcc.shape[-1] - 20) // 4 + 1)
        if n_out == 0:
            return mfcc.new_zeros((0, self._audio_modules().netfcaud[0].in_features))
        step = max(4, chunk_columns // 4 * 4)
        if mfcc.shape[-1] <= step + 2 * self.AUDIO_CHUNK_HALO:
            return self._audio_pass(mfcc)[:n_out]
        halo = self.AUDIO_CHUNK_HALO
        parts = []
        for first in range(0, n_out, step // 4):
            last = min(n_out, first + step // 4)  # outputs [first, last)
            lo = max(0, 4 * first - halo)
            hi = min(mfcc.shape[-1], 4 * (last - 1) + 20 + halo)
            out = self._audio_pass(mfcc[..., lo:hi])
            parts.append(out[first - lo // 4 : last - lo // 4])
        return torch.cat(parts)

    def audio_embeddings(self, mfcc: torch.Tensor, chunk_columns: int = 8000) -> torch.Tensor:
        """``(1, 1, 13, L)`` → ``(n, D)`` audio embeddings, one per video frame step."""
        features = self.audio_features(mfcc, chunk_columns)
        last = self._audio_modules().netfcaud[3]
        weight, bias = self.audio_head if self.audio_head is not None else (last.weight, last.bias)
        return F.linear(features, weight, bias)

    def _audio_modules(self) -> nn.Module:
        return self.audio_stream if self.audio_stream is not None else self.net

    def _audio_pass(self, mfcc: torch.Tensor) -> torch.Tensor:
        audio = self._audio_modules()
        x = audio.netcnnaud(mfcc)  # (1, w6, 1, n)
        head = audio.netfcaud
        x = F.conv2d(x, _as_kernel(head[0].weight), head[0].bias)
        x = F.relu(_batch_norm(head[1], x))
        return x[0, :, 0].transpose(0, 1)  # (n, w6)


def _as_kernel(linear_weight: torch.Tensor) -> torch.Tensor:
    return linear_weight.view(*linear_weight.shape, 1, 1)


def _batch_norm(bn: nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> torch.Tensor:
    return F.batch_norm(x, bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)


def _head_as_conv(head: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """The Linear → BN → ReLU → Linear head as 1×1 convolutions over ``(n, w6, 1, 1)`` → ``(n, D)``."""
    x = F.conv2d(x, _as_kernel(head[0].weight), head[0].bias)
    x = F.relu(_batch_norm(head[1], x))
    x = F.conv2d(x, _as_kernel(head[3].weight), head[3].bias)
    return x.flatten(1)


# loading ------------------------------------------------------------------------------------------
def _describe(source) -> str:
    return str(source) if source is not None else "the given state dict"


def split_checkpoint(payload, source=None) -> tuple[dict, SyncNetConfig]:
    """``(state_dict, config)`` from an official state dict or a project checkpoint."""
    if not isinstance(payload, dict):
        raise WeightsError(f"{_describe(source)} is not a SyncNet state dict (found {type(payload).__name__})")
    if "state_dict" in payload and isinstance(payload["state_dict"], dict):
        state = payload["state_dict"]
        try:
            config = SyncNetConfig.from_dict(payload["config"]) if payload.get("config") else SyncNetConfig.official()
        except (TypeError, ValueError) as exc:
            raise WeightsError(f"{_describe(source)} carries an invalid model config: {exc}") from exc
    else:
        state, config = payload, SyncNetConfig.official()
    # checkpoints saved from a wrapper (DataParallel, the original's SyncNetInstance) prefix every key
    for prefix in ("module.", "__S__."):
        if state and all(isinstance(k, str) and k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    return state, config


def check_state_dict(model: SyncNet, state: dict, source=None) -> None:
    """Raise :class:`WeightsError` unless ``state`` has exactly ``model``'s keys and shapes.

    ``num_batches_tracked`` may be absent (old checkpoints lack it; eval mode never reads it).
    """
    expected = model.state_dict()
    optional = {k for k in expected if k.endswith("num_batches_tracked")}
    missing = sorted(set(expected) - set(state) - optional)
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = [
        f"{k} {tuple(state[k].shape)} ≠ {tuple(expected[k].shape)}"
        for k in expected
        if k in state and torch.is_tensor(state[k]) and state[k].shape != expected[k].shape
    ]
    not_tensors = sorted(k for k in state if k in expected and not torch.is_tensor(state[k]))
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys (e.g. {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys (e.g. {', '.join(unexpected[:3])})")
    if wrong_shape:
        problems.append(f"{len(wrong_shape)} wrong shapes (e.g. {'; '.join(wrong_shape[:2])})")
    if not_tensors:
        problems.append(f"non-tensor entries ({', '.join(not_tensors[:3])})")
    if problems:
        raise WeightsError(
            f"{_describe(source)} does not match the {model.config.name} SyncNet layout: " + "; ".join(problems)
        )


def read_checkpoint(path: Path):
    """``torch.load`` of a weights file (tensors only: no code runs), errors as :class:`WeightsError`."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, random bytes, pickled code objects: all one user error
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(
            f"cannot read weights file {path} (truncated, corrupt or not a PyTorch state dict): {reason[:200]}"
        ) from exc


def load_model(weights: str | Path | dict, device: str = "cpu") -> SyncNet:
    """Build the :class:`SyncNet` a checkpoint describes and load it strictly, in eval mode.

    ``weights`` is a file (official state dict, or a project checkpoint ``{"config", "state_dict", …}``)
    or an already loaded dict. Any mismatch raises :class:`WeightsError` naming the file.
    """
    source = None if isinstance(weights, dict) else Path(weights)
    payload = weights if isinstance(weights, dict) else read_checkpoint(source)
    state, config = split_checkpoint(payload, source)
    model = SyncNet(config)
    check_state_dict(model, state, source)
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}  # fp16 checkpoints
    model.load_state_dict(state, strict=False)  # strictness already checked, minus num_batches_tracked
    model.weights_source = str(source) if source is not None else None
    return model.to(device).eval()
