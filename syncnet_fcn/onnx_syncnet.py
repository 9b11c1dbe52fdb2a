"""SyncNet members on ONNX Runtime: export, static int8 quantisation, and a drop-in fully convolutional net.

The video stream is exported as 2-D convolutions over frames: its only temporal kernel (the first
layer's 5 frames) becomes 5·C input channels of a 2-D convolution over the 5 stacked frames of each
window, every later layer has a temporal kernel of 1 and is a 2-D layer over frames, and BatchNorm is
folded into the convolutions. The numbers are those of the 3-D network (float rounding apart), and
ONNX Runtime's int8 kernels, which are 2-D, apply: a 3-D quantised convolution would run as
dequantise + float convolution, slower than float. The audio stream is 2-D already; it stays float32
(a small share of the work). Quantisation is static (QDQ, per-channel weights, uint8 activations),
with activation ranges measured on face crops of training footage, never evaluation clips.

Files are written beside the weights (or into ``--out``): ``<weights>.video.onnx``,
``<weights>.audio.onnx`` and ``<weights>.video.int8.onnx``, each stamped with the weights' SHA-256 so
a file exported from other weights is refused rather than silently used.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
import torch.nn as nn

from .cpu_budget import cpu_threads
from .errors import InvalidArgumentError, WeightsError
from .model import FullyConvSyncNet, SyncNet, prepare_video

OPSET = 17
_STAMP_KEY = "syncnet_fcn.weights_sha256"


# ----------------------------------------------------------------------------------------------------
# graphs


def _folded(weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.modules.batchnorm._BatchNorm):
    """A convolution's weight and bias with the BatchNorm after it (eval statistics) folded in."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    folded_bias = bias if bias is not None else torch.zeros_like(bn.running_mean)
    return (weight * scale.view(-1, *([1] * (weight.dim() - 1))),
            (folded_bias - bn.running_mean) * scale + bn.bias)


def _conv2d(weight: torch.Tensor, bias: torch.Tensor, stride, padding) -> nn.Conv2d:
    conv = nn.Conv2d(weight.shape[1], weight.shape[0], tuple(weight.shape[2:]), stride=tuple(stride),
                     padding=tuple(padding))
    conv.weight.data, conv.bias.data = weight.detach().clone(), bias.detach().clone()
    return conv


class VideoStream2D(nn.Module):
    """``(T, C, H, W)`` prepared frames → ``(T - 4, D)`` embeddings of the 5-frame windows.

    The same function as :meth:`FullyConvSyncNet.video_embeddings` on ``(1, C, T, H, W)``.
    """

    def __init__(self, net: SyncNet):
        super().__init__()
        modules, layers, i = list(net.netcnnlip), [], 0
        while i < len(modules):
            module = modules[i]
            if isinstance(module, nn.Conv3d):  # Conv3d, BatchNorm3d, ReLU
                weight, bias = _folded(module.weight, module.bias, modules[i + 1])
                if module.kernel_size[0] > 1:  # (out, C, t, kh, kw) -> (out, t*C, kh, kw), frame-major
                    weight = weight.permute(0, 2, 1, 3, 4).reshape(weight.shape[0], -1, *weight.shape[3:])
                else:
                    weight = weight[:, :, 0]
                layers += [_conv2d(weight, bias, module.stride[1:], module.padding[1:]), nn.ReLU()]
                i += 3
            elif isinstance(module, nn.MaxPool3d):
                def pair(value):
                    return tuple(value[1:]) if isinstance(value, tuple) else (value, value)
                layers.append(nn.MaxPool2d(pair(module.kernel_size), pair(module.stride), pair(module.padding)))
                i += 1
            else:
                raise ValueError(f"unexpected layer in the video stream: {module}")
        self.window = net.netcnnlip[0].kernel_size[0]
        head = net.netfclip
        weight, bias = _folded(head[0].weight[..., None, None], head[0].bias, head[1])
        layers += [_conv2d(weight, bias, (1, 1), (0, 0)), nn.ReLU(),
                   _conv2d(head[3].weight[..., None, None], head[3].bias, (1, 1), (0, 0))]
        self.body = nn.Sequential(*layers).eval()

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        count = frames.shape[0] - self.window + 1
        windows = torch.cat([frames[k:k + count] for k in range(self.window)], dim=1)
        return self.body(windows).flatten(1)


class AudioFeatures(nn.Module):
    """``(1, 1, 13, L)`` MFCC → ``(n, w6)`` penultimate audio features (:meth:`FullyConvSyncNet._audio_pass`)."""

    def __init__(self, net: SyncNet):
        super().__init__()
        self.fcn = FullyConvSyncNet(net)

    def forward(self, mfcc: torch.Tensor) -> torch.Tensor:
        return self.fcn._audio_pass(mfcc)


def _export(module: nn.Module, example: torch.Tensor, input_name: str, dynamic_axis: int) -> bytes:
    import warnings

    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter is chosen on purpose
        # dynamo=False: the TorchScript exporter needs only the onnx package, not onnxscript
        torch.onnx.export(module.eval(), (example,), buffer, dynamo=False, opset_version=OPSET,
                          input_names=[input_name], output_names=["output"],
                          dynamic_axes={input_name: {dynamic_axis: "length"}, "output": {0: "count"}})
    return buffer.getvalue()


def _stamped(model_bytes: bytes, weights_sha256: str) -> bytes:
    import onnx

    model = onnx.load_from_string(model_bytes)
    entry = model.metadata_props.add()
    entry.key, entry.value = _STAMP_KEY, weights_sha256
    return model.SerializeToString()


def _example_frames(net: SyncNet, count: int = 12) -> torch.Tensor:
    return torch.zeros(count, net.config.in_channels, *net.config.image_size)


def video_graph(net: SyncNet) -> bytes:
    return _export(VideoStream2D(net.cpu().eval()), _example_frames(net), "frames", 0)


def audio_graph(net: SyncNet) -> bytes:
    return _export(AudioFeatures(net.cpu().eval()), torch.zeros(1, 1, 13, 100), "mfcc", 3)


# ----------------------------------------------------------------------------------------------------
# files


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def onnx_paths(weights: str | os.PathLike, directory: str | os.PathLike | None = None) -> dict[str, Path]:
    """Where ``export`` writes (and the engine looks for) the graphs of ``weights``."""
    weights = Path(weights)
    folder = Path(directory) if directory is not None else weights.parent
    return {kind: folder / f"{weights.name}.{kind}.onnx" for kind in ("video", "audio", "video.int8")}


def calibration_windows(videos: Iterable[str | os.PathLike], net: SyncNet, *, frames_per_video: int = 36,
                        progress: Callable[[int, int], None] | None = None) -> Iterator[np.ndarray]:
    """``(T, C, H, W)`` prepared frames of the first face track of each video (at most
    ``frames_per_video`` frames each): what the video stream sees, for measuring activation ranges."""
    from .errors import SyncNetError
    from .single_pass import CropChunk, iter_tracks_with_crops

    videos = list(videos)
    for done, video in enumerate(videos, 1):
        try:
            for event in iter_tracks_with_crops(video, chunk=frames_per_video):
                if isinstance(event, CropChunk) and len(event.crops) >= 5:
                    yield prepare_video(event.crops, net.config)[0].transpose(0, 1).numpy()
                    break
        except SyncNetError:
            pass  # a training file that does not decode or has no face is simply not used
        if progress is not None:
            progress(done, len(videos))


def export(net: SyncNet, weights: str | os.PathLike, *, directory: str | os.PathLike | None = None,
           int8: bool = False, calibration: Iterable[np.ndarray] = ()) -> list[Path]:
    """Write the video and audio graphs of ``net`` (loaded from the file ``weights``), and with ``int8``
    the statically quantised video graph, its activation ranges measured on ``calibration`` windows."""
    stamp = file_sha256(weights)
    paths = onnx_paths(weights, directory)
    paths["video"].parent.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, graph in (("video", video_graph(net)), ("audio", audio_graph(net))):
        _write(paths[kind], _stamped(graph, stamp))
        written.append(paths[kind])
    if int8:
        _write(paths["video.int8"], _stamped(_quantised(paths["video"], calibration), stamp))
        written.append(paths["video.int8"])
    return written


def _write(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".part")
    partial.write_bytes(data)
    os.replace(partial, path)


def _quantised(float_model: Path, calibration: Iterable[np.ndarray]) -> bytes:
    import tempfile

    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    windows = iter(calibration)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.used = 0

        def get_next(self):
            frames = next(windows, None)
            if frames is None:
                return None
            self.used += 1
            return {"frames": np.ascontiguousarray(frames, np.float32)}

    reader = Reader()
    with tempfile.TemporaryDirectory(prefix="syncnet_fcn_int8_") as folder:
        prepared, output = Path(folder) / "prepared.onnx", Path(folder) / "int8.onnx"
        quant_pre_process(str(float_model), str(prepared))
        quantize_static(str(prepared), str(output), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        if reader.used == 0:
            raise InvalidArgumentError("no face crops found in the calibration videos: the int8 model needs some")
        return output.read_bytes()


# ----------------------------------------------------------------------------------------------------
# running


def _session(model: bytes | Path, what: str, stamp: str | None):
    import onnx
    import onnxruntime as ort

    data = model.read_bytes() if isinstance(model, Path) else model
    if stamp is not None:
        props = {p.key: p.value for p in onnx.load_from_string(data).metadata_props}
        if props.get(_STAMP_KEY) != stamp:
            raise WeightsError(f"{what} was exported from other weights: run syncnet-fcn export again")
    options = ort.SessionOptions()
    options.intra_op_num_threads = cpu_threads()  # the process's share of the cores (batch workers get less)
    options.inter_op_num_threads = 1  # nodes run one after another (sequential execution): no second pool
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


class OnnxFullyConvSyncNet(FullyConvSyncNet):
    """:class:`FullyConvSyncNet` whose video stream and audio trunk run in ONNX Runtime sessions.

    The audio head's last layer stays a matrix product here, so a calibration's refitted head
    (``audio_head``) applies unchanged.
    """

    def __init__(self, net: SyncNet, video_session, audio_session, audio_head=None, int8: bool = False):
        super().__init__(net, audio_head=audio_head)
        self.video_session, self.audio_session, self.int8 = video_session, audio_session, int8

    @classmethod
    def load(cls, net: SyncNet, weights: str | os.PathLike | None, *, int8: bool = False,
             audio_head=None) -> "OnnxFullyConvSyncNet":
        """Sessions from the files beside ``weights``; float graphs missing there are exported in memory."""
        paths = onnx_paths(weights) if weights is not None else None
        stamp = file_sha256(weights) if paths is not None and any(p.exists() for p in paths.values()) else None
        if int8:
            if paths is None or not paths["video.int8"].exists():
                raise WeightsError(f"no int8 model beside {weights}: run syncnet-fcn export --int8 "
                                   "--calibrate-on FOLDER_OF_TRAINING_VIDEOS first")
            video = _session(paths["video.int8"], str(paths["video.int8"]), stamp)
        elif paths is not None and paths["video"].exists():
            video = _session(paths["video"], str(paths["video"]), stamp)
        else:
            video = _session(video_graph(net), "the video stream", None)
        if paths is not None and paths["audio"].exists():
            audio = _session(paths["audio"], str(paths["audio"]), stamp)
        else:
            audio = _session(audio_graph(net), "the audio stream", None)
        return cls(net, video, audio, audio_head=audio_head, int8=int8)

    def video_embeddings(self, clip: torch.Tensor) -> torch.Tensor:
        if clip.shape[0] != 1:
            raise ValueError("video_embeddings takes one clip (batch of 1)")
        frames = np.ascontiguousarray(clip[0].transpose(0, 1).cpu().numpy(), np.float32)
        return torch.from_numpy(self.video_session.run(None, {"frames": frames})[0])

    def _audio_pass(self, mfcc: torch.Tensor) -> torch.Tensor:
        columns = np.ascontiguousarray(mfcc.cpu().numpy(), np.float32)
        return torch.from_numpy(self.audio_session.run(None, {"mfcc": columns})[0])


__all__ = ["VideoStream2D", "AudioFeatures", "OnnxFullyConvSyncNet", "export", "onnx_paths",
           "calibration_windows", "file_sha256"]
