"""Output writers: one class per format, looked up by name with :func:`get_writer`.

A writer turns a result object (a timeline, a batch table, monitor events, ...) into one file format.
Results are plain data classes that know nothing of formats; front ends pick a writer by the format
name the user gave (``--format srt``) and never format results themselves.

    writer = get_writer("srt")
    writer.write(result, Path("talk.srt"))      # atomically: a crash never leaves half a file
    text = writer.render(result)                # the same, as a string

Add a format by subclassing :class:`Writer` with ``name`` and ``extension`` and ``render``; the
``register`` decorator makes it known to :func:`get_writer`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import InvalidArgumentError

_WRITERS: dict[str, type["Writer"]] = {}


class Writer:
    """One output format. Subclasses set ``name``/``extension`` and implement :meth:`render`."""

    name: str = ""
    extension: str = ""

    def render(self, result) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def write(self, result, path: Path) -> Path:
        path = Path(path)
        write_text_atomic(path, self.render(result))
        return path


def register(cls: type[Writer]) -> type[Writer]:
    _WRITERS[cls.name] = cls
    return cls


def get_writer(name: str) -> Writer:
    try:
        return _WRITERS[name.strip().lower()]()
    except KeyError:
        known = ", ".join(sorted(_WRITERS)) or "none"
        raise InvalidArgumentError(f"unknown output format {name!r} (known: {known})") from None


def writer_names() -> list[str]:
    return sorted(_WRITERS)


def write_text_atomic(path: Path, text: str) -> None:
    """Write through a temporary file in the same folder and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
