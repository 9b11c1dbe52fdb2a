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


@pytest.fixture
def clip():
    """``clip("syncnet_example.avi")`` → path, skipping when ../shared is absent."""
    return clip_path
