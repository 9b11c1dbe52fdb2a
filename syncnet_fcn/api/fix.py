"""``POST /api/fix``: the uploaded video with its audio moved into sync, as a file download.

Form fields: ``video``, optional ``offset`` (frames, SyncNet convention) and ``force`` (``true`` to act
on an unreliable reading). The readings before and after travel in the ``X-Sync-Before`` and
``X-Sync-After`` headers (JSON). An unreliable reading is refused with 422 ``unreliable_reading``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from flask import Blueprint, after_this_request, current_app, request, send_file

from ..errors import InvalidArgumentError
from .uploads import receive_upload

blueprint = Blueprint("fix", __name__)


@blueprint.post("/api/fix")
def fix():
    from ..repair import fix_video

    offset = _offset(request.form.get("offset"))
    force = (request.form.get("force") or "").strip().lower() in ("1", "true", "yes", "on")
    sync = current_app.extensions["syncnet_fcn"]
    upload_dir, video, name = receive_upload(current_app)
    out = upload_dir / "fixed" / f"{Path(name).stem}.fixed{Path(name).suffix or '.mp4'}"

    @after_this_request
    def clean_up(response):
        response.call_on_close(lambda: shutil.rmtree(upload_dir, ignore_errors=True))
        return response

    try:
        sync.acquire_slot()
        try:
            pipeline, lock = sync.pipelines.get(["auto"])
            with lock:
                result = fix_video(video, out, offset=offset, force=force, pipeline=pipeline)
        finally:
            sync.slots.release()
    except BaseException:
        shutil.rmtree(upload_dir, ignore_errors=True)
        raise
    summary = result.to_dict()
    response = send_file(out, as_attachment=True, download_name=out.name)
    response.headers["X-Sync-Before"] = json.dumps(summary["before"])
    response.headers["X-Sync-After"] = json.dumps(summary["after"])
    response.headers["X-Sync-Shift-Frames"] = str(result.shift_frames)
    return response


def _offset(value) -> int | None:
    if value is None or not str(value).strip():
        return None
    try:
        number = float(value)
    except ValueError:
        raise InvalidArgumentError(f"offset must be a whole number of frames, got {value!r}") from None
    if not number.is_integer():
        raise InvalidArgumentError(f"offset must be a whole number of frames, got {value!r}")
    return int(number)

