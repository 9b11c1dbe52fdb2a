"""Weights registry, cache resolution and checksummed downloads against a local HTTP server."""

from __future__ import annotations

import functools
import hashlib
import http.server
import socket
import threading

import pytest
import torch

from syncnet_fcn import weights
from syncnet_fcn.errors import DownloadError, WeightsError


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Empty cache, no explicit weights, no shipped project checkpoint, registry restored afterwards."""
    monkeypatch.setenv("SYNCNET_FCN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SYNCNET_FCN_WEIGHTS", raising=False)
    monkeypatch.setattr(weights, "REPO_ROOT", tmp_path / "repo")
    monkeypatch.setattr(weights, "REGISTRY", dict(weights.REGISTRY))
    return tmp_path


@pytest.fixture
def server(tmp_path):
    """A static HTTP server on 127.0.0.1 serving ``tmp_path / "served"``; yields its base URL."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", root
    httpd.shutdown()
    httpd.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_registry_knows_the_official_weights():
    entry = weights.REGISTRY["syncnet_v2"]
    assert entry["url"] == "https://www.robots.ox.ac.uk/~vgg/software/lipsync/data/syncnet_v2.model"
    assert entry["filename"] == "syncnet_v2.model"
    assert {"sha256", "size", "description"} <= set(entry)


def test_download_success_with_progress(isolated, server, capsys):
    base, root = server
    payload = bytes(range(256)) * 5000
    (root / "blob.bin").write_bytes(payload)
    weights.register("blob", kind="official", url=f"{base}/blob.bin", filename="blob.bin",
                     sha256=hashlib.sha256(payload).hexdigest(), size=len(payload), description="test blob")
    path = weights.download("blob", progress=True)
    assert path == weights.cache_dir() / "blob.bin"
    assert path.read_bytes() == payload
    assert not path.with_name("blob.bin.part").exists()
    assert "blob.bin" in capsys.readouterr().err  # the progress bar went to stderr
    assert weights.resolve_weights("blob") == path


def test_checksum_mismatch_is_rejected_and_partial_removed(isolated, server):
    base, root = server
    (root / "blob.bin").write_bytes(b"x" * 10000)
    weights.register("blob", kind="official", url=f"{base}/blob.bin", filename="blob.bin",
                     sha256="0" * 64, size=None, description="")
    dest = isolated / "dest"
    with pytest.raises(DownloadError, match="checksum mismatch"):
        weights.download("blob", dest_dir=dest, progress=False)
    assert list(dest.iterdir()) == []  # neither blob.bin nor blob.bin.part


def test_unverified_entry_is_checked_by_its_state_dict_layout(isolated, server):
    from test_model import official_state_dict

    base, root = server
    torch.save(official_state_dict(), root / "syncnet_v2.model")
    (root / "garbage.model").write_bytes(b"\x00" * 5000)
    weights.register("good", kind="official", url=f"{base}/syncnet_v2.model", filename="syncnet_v2.model",
                     sha256=None, size=None, description="")
    weights.register("bad", kind="official", url=f"{base}/garbage.model", filename="garbage.model",
                     sha256=None, size=None, description="")
    assert weights.download("good", progress=False).is_file()
    with pytest.raises(DownloadError, match="garbage.model"):
        weights.download("bad", progress=False)
    assert not (weights.cache_dir() / "garbage.model").exists()
    assert not (weights.cache_dir() / "garbage.model.part").exists()


def test_server_down_gives_a_clear_offline_error(isolated):
    url = f"http://127.0.0.1:{_free_port()}/syncnet_v2.model"
    weights.register("syncnet_v2", **dict(weights.REGISTRY["syncnet_v2"], url=url))
    with pytest.raises(DownloadError) as info:
        weights.download("syncnet_v2", progress=False)
    message = info.value.message
    assert "offline" in message and "syncnet_v2.model" in message and url in message
    assert str(weights.cache_dir() / "syncnet_v2.model") in message and "--weights PATH" in message
    assert not (weights.cache_dir() / "syncnet_v2.model.part").exists()


def test_missing_weights_name_the_file_url_and_place(isolated):
    assert weights.default_weights() is None
    with pytest.raises(WeightsError) as info:
        weights.resolve_weights(None)
    message = info.value.message
    for needle in ("syncnet_v2.model", weights.REGISTRY["syncnet_v2"]["url"], str(weights.cache_dir()), "--weights"):
        assert needle in message
    assert weights.weights_status(None)["available"] is False
    with pytest.raises(WeightsError, match="not downloaded"):
        weights.resolve_weights("syncnet_v2")
    with pytest.raises(WeightsError, match="does not exist"):
        weights.resolve_weights(isolated / "nowhere.model")


def test_default_weights_order(isolated, monkeypatch):
    # a shipped project checkpoint is used when the official file is absent ...
    project = weights.REPO_ROOT / "checkpoints" / "light.pt"
    project.parent.mkdir(parents=True)
    project.write_bytes(b"checkpoint")
    weights.register("light", kind="project", path="checkpoints/light.pt", filename="light.pt",
                     url=None, sha256=None, size=None, description="")
    assert weights.default_weights() == str(project)
    # ... the cached official file wins over it ...
    official = weights.cache_dir() / "syncnet_v2.model"
    official.parent.mkdir(parents=True)
    official.write_bytes(b"weights")
    assert weights.default_weights() == str(official)
    status = weights.weights_status(None)
    assert status["available"] and status["weights"] == str(official)
    # ... and an explicit file beats both, even one that is missing (it must not be silently replaced)
    monkeypatch.setenv("SYNCNET_FCN_WEIGHTS", str(isolated / "mine.model"))
    assert weights.default_weights() == str(isolated / "mine.model")
    with pytest.raises(WeightsError, match="mine.model"):
        weights.resolve_weights(None)


def test_shipped_project_checkpoints_match_their_registry_entries():
    """A retrained checkpoint must come with its new sha256 and size, and its side files with it."""
    import json

    from syncnet_fcn import weights
    from syncnet_fcn.calibrate import calibration_path, load_thresholds, thresholds_path

    shipped = {name: e for name, e in weights.registry().items() if e.get("kind") == "project"}
    assert shipped, "no project checkpoint registered"
    for name, entry in shipped.items():
        path = weights.REPO_ROOT / entry["path"]
        assert path.is_file(), path
        assert weights.sha256_file(path) == entry["sha256"] and path.stat().st_size == entry["size"], name
        for side in (calibration_path(path), thresholds_path(path)):
            if side.is_file():
                data = json.loads(side.read_text())
                fitted_for = data.get("weights_sha256") or data.get("provenance", {}).get("weights_sha256")
                assert fitted_for == entry["sha256"], side.name
        assert load_thresholds(path, "fcn"), "no thresholds measured for the shipped checkpoint"
