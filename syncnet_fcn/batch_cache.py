"""The result cache of batch evaluation: one entry per (video content, engine, weights, options).

A result is keyed by the sha256 of the video file's bytes, the engine that ran, the sha256 of the files
that engine's numbers depend on (its model and the calibration beside it) and the options that change
a number, so an edited video, retrained weights or another search range miss the cache while a renamed
or moved file hits it.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .weights import sha256_file as file_sha256

__all__ = ["ResultCache", "engine_files", "file_sha256", "weights_fingerprint"]


def engine_files(engine: str, weights: str | None) -> tuple[str, list[Path]]:
    """``(engine name, files its numbers depend on)``: the model and whatever calibration sits beside it.

    Resolves ``auto`` exactly as :func:`syncnet_fcn.engines.create_engine` does, without loading a model.
    """
    from .engines import _pick_auto

    if engine == "auto":
        engine, weights = _pick_auto(weights)
    if engine == "landmark":
        from .landmark.models import CALIBRATION_PATH, MODEL_PATH

        return engine, [MODEL_PATH, CALIBRATION_PATH]
    from .calibrate import calibration_path, thresholds_path
    from .weights import resolve_weights

    path = resolve_weights(weights)
    return engine, [path] + [p for p in (calibration_path(path), thresholds_path(path)) if p.exists()]


def weights_fingerprint(engine: str, weights: str | None) -> tuple[str, str]:
    """``(engine name, sha256 over the engine's model and calibration files)``."""
    name, files = engine_files(engine, weights)
    digest = hashlib.sha256(name.encode())
    for path in files:
        digest.update(path.name.encode())
        digest.update(file_sha256(path).encode())
    return name, digest.hexdigest()


class ResultCache:
    """One JSON file per (video content, engine, weights, options) under ``root``; written atomically,
    so an interrupted run leaves only whole entries."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    @classmethod
    def default(cls) -> ResultCache:
        from .weights import cache_dir

        return cls(cache_dir() / "eval")

    @staticmethod
    def key(video_sha256: str, engine: str, weights_sha256: str, options) -> str:
        fields = {"video": video_sha256, "engine": engine, "weights": weights_sha256,
                  "options": options.key_fields(), "format": 1}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict | None:
        try:
            return json.loads(self._path(key).read_text())
        except (OSError, ValueError):
            return None

    def put(self, key: str, result) -> None:
        from .writers import write_text_atomic

        data = result.to_dict()
        for per_run in ("video", "group", "cached"):
            data.pop(per_run)
        write_text_atomic(self._path(key), json.dumps(data))
