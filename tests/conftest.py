"""Shared fixtures: the real clips beside the checkout, and small helpers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SYNCNET_FCN_SHARED", REPO.parent / "shared"))
CLIPS = SHARED / "clips"


def clip_path(name: str) -> Path:
    path = CLIPS / name
    if not path.exists():
        pytest.skip(f"{path} not present (../shared/clips is needed for this test)")
    return path


@pytest.fixture(scope="session")
def manifest() -> list[dict]:
    path = CLIPS / "manifest.json"
    if not path.exists():
        pytest.skip("../shared/clips/manifest.json not present")
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def isolated_engines(tmp_path_factory):
    """No SyncNet weights anywhere: the engine that runs (and ``auto`` picks) is ``landmark``."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SYNCNET_FCN_CACHE", str(tmp_path_factory.mktemp("weights_cache")))
        mp.delenv("SYNCNET_FCN_WEIGHTS", raising=False)
        mp.setenv("SYNCNET_FCN_NO_PROJECT_WEIGHTS", "1")
        yield


@pytest.fixture
def clip():
    """``clip("syncnet_example.avi")`` → path, skipping when ../shared is absent."""
    return clip_path


def write_test_video(path: Path, frames, audio=None, fps: int = 25, sample_rate: int = 16000,
                     lossless: bool = False) -> Path:
    """Encode ``frames`` (iterable of BGR uint8 arrays) and optional int16 mono ``audio`` with PyAV.

    ``lossless`` codes H.264 at crf 0, so flat frames keep their exact level (a frame can say its index).
    """
    from fractions import Fraction

    import av
    import numpy as np

    frames = list(frames)
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        vstream = container.add_stream("libx264" if path.suffix == ".mp4" else "mpeg4", rate=fps)
        vstream.width, vstream.height, vstream.pix_fmt = width, height, "yuv420p"
        vstream.codec_context.time_base = Fraction(1, fps)
        if lossless:
            vstream.options = {"crf": "0"}
        astream = None
        if audio is not None:
            astream = container.add_stream("aac", rate=sample_rate)
            astream.layout = "mono"
        for index, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="bgr24")
            frame.pts = index
            for packet in vstream.encode(frame):
                container.mux(packet)
        for packet in vstream.encode():
            container.mux(packet)
        if astream is not None:
            samples = np.asarray(audio, dtype=np.int16)
            step = 1024
            for start in range(0, len(samples), step):
                chunk = samples[start:start + step]
                aframe = av.AudioFrame.from_ndarray(chunk[None, :], format="s16", layout="mono")
                aframe.sample_rate = sample_rate
                aframe.pts = start
                for packet in astream.encode(aframe):
                    container.mux(packet)
            for packet in astream.encode():
                container.mux(packet)
    return path
