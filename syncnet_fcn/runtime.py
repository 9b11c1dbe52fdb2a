"""Where the SyncNet members run: the torch device, and the runtime (torch or ONNX Runtime).

Chosen once, before the engines are built, and handed to them. ``auto`` picks a GPU when torch sees
one; on the CPU it picks ONNX Runtime when it is installed (``pip install syncnet-fcn[onnx]``), which
runs the same networks several times faster than torch's CPU kernels.
"""

from __future__ import annotations

import importlib.util

from .errors import EngineUnavailableError, InvalidArgumentError

DEVICES = ("auto", "cpu", "cuda")
RUNTIMES = ("auto", "torch", "onnx")


def onnx_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None and importlib.util.find_spec("onnx") is not None


def resolve_device(device: str | None) -> str:
    """``auto`` (or None): ``"cuda"`` when torch sees a GPU, else ``"cpu"``; any other name as given
    (``SyncPipeline`` refuses one that does not exist here with a one-line error)."""
    import torch

    device = (device or "auto").strip().lower()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def resolve_runtime(runtime: str | None, device: str, int8: bool = False) -> str:
    """``"torch"`` or ``"onnx"`` for networks on ``device`` (already resolved)."""
    runtime = (runtime or "auto").strip().lower()
    if runtime not in RUNTIMES:
        raise InvalidArgumentError(f"unknown runtime {runtime!r}: choose from {', '.join(RUNTIMES)}")
    if runtime == "auto":
        runtime = "onnx" if (int8 or device == "cpu") and onnx_available() else "torch"
    if runtime == "onnx":
        if not onnx_available():
            raise EngineUnavailableError("the onnx runtime needs onnxruntime and onnx: pip install syncnet-fcn[onnx]")
        if device != "cpu":
            raise InvalidArgumentError("the onnx runtime runs on the CPU here; use --runtime torch on a GPU")
    if int8 and runtime != "onnx":
        raise InvalidArgumentError("--int8 runs quantised ONNX models: it needs --runtime onnx (pip install syncnet-fcn[onnx])")
    return runtime


__all__ = ["DEVICES", "RUNTIMES", "onnx_available", "resolve_device", "resolve_runtime"]
