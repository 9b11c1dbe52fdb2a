"""The timeline's checkpoint: finished windows kept as JSON lines, read back by ``--resume``.

Line one is a header (format version, video name and length, settings), then the enrolment, then one
line per finished window: its record and the identity and voice galleries as they stand after it.
Each line is flushed and fsynced as it is written, so a crash loses at most the window in progress;
a last line cut short is ignored on reading.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import InvalidArgumentError

CHECKPOINT_VERSION = 1


def write_lines(path: Path, entries: list[dict], mode: str = "a") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, mode, encoding="utf-8") as fh:
        for entry in entries:
            fh.write(json.dumps(entry, separators=(",", ":")) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def read_checkpoint(path: Path, header: dict) -> tuple[list[dict], dict | None]:
    """Window records and the galleries after the last complete window; checks the run matches."""
    records, state = [], None
    with open(path, encoding="utf-8") as fh:
        lines = fh.read().split("\n")
    entries = []
    for line in lines:
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line cut short by a crash: what came before is complete
    if not entries or entries[0].get("kind") != "header":
        raise InvalidArgumentError(f"{path.name} is not a timeline checkpoint")
    theirs = entries[0]
    if (theirs.get("version"), theirs.get("video"), theirs.get("n_frames"), theirs.get("settings")) != (
            header["version"], header["video"], header["n_frames"], header["settings"]):
        raise InvalidArgumentError(f"{path.name} was made for another video or other settings: "
                                   "run without --resume to start again")
    for entry in entries[1:]:
        if entry.get("kind") == "enrolment":
            state = {"faces": entry["faces"], "voices": {"threshold": header["settings"]["voice_threshold"],
                                                         "voices": {}}}
        elif entry.get("kind") == "window":
            records.append(entry["record"])
            state = entry["state"]
    return records, state


__all__ = ["CHECKPOINT_VERSION", "read_checkpoint", "write_lines"]
