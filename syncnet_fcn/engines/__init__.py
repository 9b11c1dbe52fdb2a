"""Engine registry: build an engine by name and say which ones can run here, and why not."""

from __future__ import annotations

from .base import OpenTrackScorer, SyncEngine, TrackScorer, TrackSync

ENGINE_NAMES = ("syncnet", "fcn", "landmark", "fused")

__all__ = ["ENGINE_NAMES", "OpenTrackScorer", "SyncEngine", "TrackScorer", "TrackSync", "create_engine", "available_engines"]


def create_engine(name: str, weights: str | None = None, device: str = "cpu", runtime: str = "torch",
                  int8: bool = False) -> SyncEngine:
    """Build engine ``name`` ("syncnet", "fcn", "landmark", "fused" or "auto").

    ``device``, ``runtime`` ("torch" or "onnx") and ``int8`` are resolved already
    (:mod:`syncnet_fcn.runtime`); the ONNX runtime serves the ``fcn`` engine, the others run in torch.

    ``auto`` picks the best engine that can run here: ``fcn`` on official weights, else ``fcn`` on a
    project-trained checkpoint registered for auto use, else ``fused`` when its stored fit says it beat
    each member on the benchmark and the light checkpoint is here, else ``landmark``. Raises :class:`EngineUnavailableError` or
    :class:`WeightsError` with a readable message when the engine cannot run.
    """
    from ..errors import EngineUnavailableError

    if name == "auto":
        name, weights = _pick_auto(weights)
    if name == "syncnet":
        from .syncnet import SlidingWindowEngine

        return SlidingWindowEngine.from_weights(weights, device=device)
    if name == "fcn":
        from .fcn import FCNEngine

        return FCNEngine.from_weights(weights, device=device, runtime=runtime, int8=int8)
    if name == "landmark":
        from .landmark import LandmarkEngine

        return LandmarkEngine()
    if name == "fused":
        from .fused import FusedEngine

        # ONNX fp32 equals torch to ~1e-5; int8 is not used: the fusion was fitted on float distances
        return FusedEngine.from_weights(weights, device=device, runtime=runtime)
    raise EngineUnavailableError(f"unknown engine {name!r}: choose one of {', '.join(ENGINE_NAMES)} or auto")


def _pick_auto(weights: str | None) -> tuple[str, str | None]:
    from ..weights import auto_weights

    if weights is not None:
        return "fcn", weights
    found = auto_weights()
    if found is not None:
        return "fcn", found
    if _fused_wins():
        return "fused", None
    return "landmark", None


def _fused_wins() -> bool:
    """The stored fusion says ``auto`` (it beat each member) and it can run here."""
    from .fused import FUSION_PATH, fused_available

    if not FUSION_PATH.is_file() or not fused_available()[0]:
        return False
    import json

    return bool(json.loads(FUSION_PATH.read_text()).get("auto"))


def available_engines(weights: str | None = None) -> dict[str, dict]:
    """``{name: {"available": bool, "reason": str, "weights": str | None}}`` for every engine."""
    from ..weights import default_weights, weights_status

    status = {}
    path = weights or default_weights()
    wstat = weights_status(path)
    for name in ("syncnet", "fcn"):
        status[name] = {"available": wstat["available"], "reason": wstat["reason"], "weights": wstat["weights"]}
    try:
        from ..landmark.models import landmark_available

        ok, reason = landmark_available()
    except ImportError as exc:  # the landmark engine's dependencies are missing
        ok, reason = False, f"landmark engine unavailable: {exc}"
    status["landmark"] = {"available": ok, "reason": reason, "weights": "mediapipe bundled face models"}
    from .fused import fused_available

    fused_ok, fused_reason = fused_available()
    status["fused"] = {"available": ok and fused_ok, "reason": fused_reason if ok else reason,
                       "weights": "landmark + fcn (light checkpoint)"}
    return status
