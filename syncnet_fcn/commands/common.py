"""What several subcommands share: the engine, weights, device and progress options, and the checks of
an input video or an output file made before any work starts (each raises
:class:`~syncnet_fcn.errors.InvalidArgumentError`: one line, exit code 2)."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

from ..engines import ENGINE_NAMES
from ..errors import InvalidArgumentError

#: ``--engine`` of the commands that read one video or stream: the registry's engines and ``auto``
ENGINE_CHOICES = ("auto", *ENGINE_NAMES)
WEIGHTS_HELP = "weights file or registry name"


def add_engine_argument(parser, choices=ENGINE_CHOICES, default: str = "auto", help: str | None = None) -> None:
    parser.add_argument("--engine", default=default, choices=list(choices), help=help)


def add_weights_argument(parser, help: str = WEIGHTS_HELP) -> None:
    parser.add_argument("--weights", help=help)


def add_device_argument(parser, default: str = "cpu", help: str | None = None) -> None:
    parser.add_argument("--device", default=default, help=help)


def add_quiet_argument(parser) -> None:
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def input_video(text: str) -> Path:
    """The input video's path, refused now when it is missing or a folder."""
    video = Path(text)
    if not video.exists():
        raise InvalidArgumentError(f"no such file: {video}")
    if video.is_dir():
        raise InvalidArgumentError(f"{video} is a directory, not a video file")
    return video


def check_output_file(path: Path, option: str) -> None:
    """Before any work: ``path`` can be written (its folder exists or can be made, it is not a folder)."""
    if path.is_dir():
        raise InvalidArgumentError(f"{option} {path} is a directory: give a file name")
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidArgumentError(f"{option}: cannot create the folder {folder}: {exc.strerror or exc}") from None
    if not folder.is_dir():
        raise InvalidArgumentError(f"{option}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise InvalidArgumentError(f"{option}: {path} cannot be written (permission denied)")


@contextmanager
def stage_progress(quiet: bool):
    """A :class:`~syncnet_fcn.commands.progress.StageProgressBar` (``None`` with ``--quiet``), closed
    however the work ends, so that an error line is not printed into a half-drawn bar."""
    from .progress import StageProgressBar

    bar = None if quiet else StageProgressBar()
    try:
        yield bar
    finally:
        if bar is not None:
            bar.close()
