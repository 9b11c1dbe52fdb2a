"""Where sync weights come from: a small registry, a cache directory, checksummed downloads.

Resolution order for the default weights: ``$SYNCNET_FCN_WEIGHTS`` (an explicit file), the official
``syncnet_v2.model`` in the cache (``$SYNCNET_FCN_CACHE``, default ``~/.cache/syncnet_fcn``), then a
project-trained checkpoint shipped in ``checkpoints/`` and listed in the registry. Nothing here ever
falls back to random weights: missing weights are a :class:`WeightsError` that says what to fetch and
where to put it.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path

from .errors import DownloadError, WeightsError

OFFICIAL = "syncnet_v2"
REPO_ROOT = Path(__file__).resolve().parents[1]
_REGISTRY_FILE = Path(__file__).with_name("data") / "weights.json"

#: ``{name: {kind, url, sha256, size, filename, description, [path]}}``. ``kind`` is ``official``
#: (downloaded into the cache) or ``project`` (shipped at ``path``, relative to the repository root,
#: e.g. ``checkpoints/syncnet_light.pt``; training registers its checkpoint in data/weights.json).
REGISTRY: dict[str, dict] = json.loads(_REGISTRY_FILE.read_text())


def registry() -> dict[str, dict]:
    return REGISTRY


def register(name: str, **entry) -> None:
    """Add or replace a registry entry for this process (tests, plug-ins)."""
    REGISTRY[name] = entry


def cache_dir() -> Path:
    return Path(os.environ.get("SYNCNET_FCN_CACHE") or Path.home() / ".cache" / "syncnet_fcn").expanduser()


def entry_path(name: str) -> Path:
    """Where the registry entry ``name`` lives (or would live once downloaded)."""
    entry = registry()[name]
    if entry.get("kind") == "project":
        return REPO_ROOT / entry["path"]
    return cache_dir() / entry["filename"]


def _where_to_put(name: str = OFFICIAL) -> str:
    entry = registry()[name]
    return (
        f"{entry['filename']} from {entry['url']}: run `syncnet-fcn weights download`, or fetch it by hand "
        f"and put it at {cache_dir() / entry['filename']} (or pass --weights PATH, or set SYNCNET_FCN_WEIGHTS)"
    )


def default_weights() -> str | None:
    """The weights the engines use when none are named, or ``None`` when there are none here."""
    explicit = os.environ.get("SYNCNET_FCN_WEIGHTS")
    if explicit:
        return explicit  # named on purpose: if it is missing, resolving it says so instead of guessing
    entries = registry()
    official = [n for n, e in entries.items() if e.get("kind", "official") == "official"]
    project = [n for n, e in entries.items() if e.get("kind") == "project"]
    if os.environ.get("SYNCNET_FCN_NO_PROJECT_WEIGHTS"):
        project = []  # e.g. to compare against the embedded engine, or in tests of the no-weights path
    for name in official + project:
        path = entry_path(name)
        if path.is_file() and path.stat().st_size > 0:
            return str(path)
    return None


def auto_weights() -> str | None:
    """The weights ``--engine auto`` runs the fcn engine on, or ``None`` (auto then uses ``landmark``).

    Like :func:`default_weights`, except that a project checkpoint whose registry entry says
    ``"auto": false`` (it does not yet beat the embedded engine) is left for explicit use only.
    """
    found = default_weights()
    if found is None or os.environ.get("SYNCNET_FCN_WEIGHTS"):
        return found
    for name, entry in registry().items():
        if entry.get("kind") == "project" and entry_path(name) == Path(found) and entry.get("auto") is False:
            return None
    return found


def resolve_weights(spec: str | os.PathLike | None) -> Path:
    """A weights file from a path, a registry name, or ``None`` (the default); missing → WeightsError."""
    if spec is None:
        found = default_weights()
        if found is None:
            raise WeightsError(f"no SyncNet weights available. Need {_where_to_put()}")
        spec = found
    spec_str = str(spec)
    entries = registry()
    if spec_str in entries and not Path(spec_str).exists():
        path = entry_path(spec_str)
        if not path.is_file():
            if entries[spec_str].get("kind") == "project":
                raise WeightsError(f"project checkpoint {spec_str} is missing: expected at {path}")
            raise WeightsError(f"weights {spec_str} not downloaded yet. Need {_where_to_put(spec_str)}")
        return path
    path = Path(spec_str).expanduser()
    if path.is_dir():
        raise WeightsError(f"{path} is a directory: give the weights file itself (a .pt or .model file)")
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist. For the official weights: {_where_to_put()}")
    return path


def weights_status(spec: str | os.PathLike | None) -> dict:
    """``{"available": bool, "reason": str, "weights": str | None}`` without loading the model."""
    try:
        path = resolve_weights(spec)
    except WeightsError as exc:
        return {"available": False, "reason": exc.message, "weights": str(spec) if spec is not None else None}
    if path.stat().st_size == 0:
        return {"available": False, "reason": f"weights file {path} is empty", "weights": str(path)}
    return {"available": True, "reason": f"weights at {path}", "weights": str(path)}


_LABELS: dict[tuple, str] = {}


def weights_label(weights: str | os.PathLike | None) -> str | None:
    """How results name a weights file: its file name and sha256, never the folder it sits in.

    Anything that is not an existing file (a registry name not yet resolved, "mediapipe bundled face
    models") is returned unchanged. Checksums are remembered per (path, size, mtime).
    """
    if weights is None:
        return None
    path = Path(weights)
    try:
        stat = path.stat()
    except (OSError, ValueError):
        return str(weights)
    if not path.is_file():
        return str(weights)
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _LABELS:
        _LABELS[key] = f"{path.name} (sha256 {sha256_file(path)})"
    return _LABELS[key]


def public_weights_status(status: dict) -> dict:
    """``weights_status``'s answer with server paths replaced by :func:`weights_label` (for clients)."""
    out = dict(status)
    out["reason"] = str(status.get("reason", "")).replace(str(cache_dir()), "the weights cache ($SYNCNET_FCN_CACHE)")
    raw = status.get("weights")
    if raw:
        label = weights_label(raw)
        out["weights"] = label
        out["reason"] = out["reason"].replace(str(raw), label)
        parent = str(Path(raw).parent)
        if parent not in (".", "/"):
            out["reason"] = out["reason"].replace(parent + os.sep, "")
    return out


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def download(name: str = OFFICIAL, dest_dir: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """Fetch registry entry ``name`` into ``dest_dir`` (default: the cache) and return its path.

    Streams to ``<file>.part`` with a progress bar on stderr, checks the sha256 (or, for an entry
    without a published checksum, the size and the state-dict layout), then renames atomically.
    """
    entries = registry()
    if name not in entries:
        raise WeightsError(f"unknown weights {name!r}: known are {', '.join(sorted(entries))}")
    entry = entries[name]
    if entry.get("kind") == "project":
        return resolve_weights(name)  # shipped with the code, nothing to download
    target = Path(dest_dir).expanduser() if dest_dir is not None else cache_dir()
    target = target / entry["filename"]
    check = None if entry.get("sha256") else _check_layout
    return download_file(
        entry["url"], target, sha256=entry.get("sha256"), size=entry.get("size"), progress=progress, check=check
    )


def download_file(
    url: str,
    target: Path,
    sha256: str | None = None,
    size: int | None = None,
    progress: bool = True,
    timeout: float = 30.0,
    check=None,
) -> Path:
    """Stream ``url`` to ``target`` through ``target.part``; a bad checksum removes the partial file.

    ``check(partial_path)``, if given, may raise :class:`WeightsError` to reject the file before the rename.
    """
    from tqdm import tqdm

    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot create {target.parent} for {target.name}: {exc.strerror}") from exc
    partial = target.with_name(target.name + ".part")
    digest = hashlib.sha256()
    received = 0
    try:
        out = open(partial, "wb")
    except OSError as exc:
        raise DownloadError(f"cannot write {partial}: {exc.strerror}; choose another place with --dest") from exc
    try:
        with out, urllib.request.urlopen(url, timeout=timeout) as response:
            total = int(response.headers.get("Content-Length") or 0) or size
            with tqdm(
                total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=target.name,
                disable=not progress, file=sys.stderr,
            ) as bar:
                while block := response.read(1 << 20):
                    out.write(block)
                    digest.update(block)
                    received += len(block)
                    bar.update(len(block))
    except (urllib.error.URLError, socket.timeout, ConnectionError, OSError) as exc:
        partial.unlink(missing_ok=True)
        reason = getattr(exc, "reason", None) or exc
        raise DownloadError(
            f"cannot download {target.name} from {url} (offline or unreachable: {reason}). "
            f"Fetch it by hand and put it at {target}, or pass --weights PATH"
        ) from exc
    except BaseException:  # interrupted: leave no partial file behind
        partial.unlink(missing_ok=True)
        raise
    if sha256 and digest.hexdigest() != sha256.lower():
        partial.unlink(missing_ok=True)
        raise DownloadError(
            f"checksum mismatch for {target.name} from {url}: got sha256 {digest.hexdigest()}, expected "
            f"{sha256}; the partial download was removed"
        )
    if size and received != size:
        partial.unlink(missing_ok=True)
        raise DownloadError(f"{target.name} from {url}: got {received} bytes, expected {size}; removed")
    if check is not None:
        try:
            check(partial)
        except WeightsError as exc:
            partial.unlink(missing_ok=True)
            raise DownloadError(f"downloaded {target.name} from {url} is unusable ({exc.message}); removed") from exc
    os.replace(partial, target)
    return target


def _check_layout(path: Path) -> None:
    """For files without a published checksum: they must load as a SyncNet state dict."""
    from .model import load_model

    load_model(path)
