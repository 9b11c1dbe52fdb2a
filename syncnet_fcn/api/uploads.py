"""Receiving an uploaded video: every endpoint that takes one stores and checks it the same way."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from flask import Flask, request

from .. import service
from ..errors import InvalidArgumentError


def receive_upload(app: Flask) -> tuple[Path, Path, str]:
    """Store the ``video`` part in a fresh workspace and check it decodes: ``(workspace, path, name)``.

    The caller owns the workspace; it is removed here if the upload is refused.
    """
    upload = request.files.get("video")
    if upload is None:
        raise InvalidArgumentError("send the video as a multipart form field named 'video'")
    name = service.safe_filename(upload.filename, default="video")
    root = app.config["SYNC_UPLOAD_DIR"]
    upload_dir = Path(tempfile.mkdtemp(prefix="syncnet_fcn_", dir=root))
    try:
        path = upload_dir / name
        upload.save(path)
        service.check_video(path)
    except BaseException:
        shutil.rmtree(upload_dir, ignore_errors=True)
        raise
    return upload_dir, path, name
