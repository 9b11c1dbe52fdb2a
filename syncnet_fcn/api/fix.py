"""``POST /api/fix``: the uploaded video with its audio moved into sync, as a file download.

Form fields: ``video``, optional ``offset`` (frames, SyncNet convention) and ``force`` (``true`` to act
on an unreliable reading). The readings before and after travel in the ``X-Sync-Before`` and
``X-Sync-After`` headers (JSON). An unreliable reading is refused with 422 ``unreliable_reading``.
``per_segment`` (``true``) corrects stretch by stretch (:mod:`syncnet_fcn.segment_fix`; ``window``:
seconds per reading, 10 by default):
then the two headers hold the per-window readings and ``X-Sync-Stretches`` the stretches.
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
    force = _flag(request.form.get("force"))
    per_segment = _flag(request.form.get("per_segment"))
    window = _seconds(request.form.get("window"))
    if per_segment and offset is not None:
        raise InvalidArgumentError("offset applies one offset to the whole video; drop it with per_segment")
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
            if per_segment:
                from ..segment_fix import fix_per_segment, timeline_measure

                result = fix_per_segment(video, out, measure=timeline_measure(window_s=window), force=force)
            else:
                pipeline, lock = sync.pipelines.get(["auto"])
                with lock:
                    result = fix_video(video, out, offset=offset, force=force, pipeline=pipeline)
        finally:
            sync.slots.release()
    except BaseException:
        shutil.rmtree(upload_dir, ignore_errors=True)
        raise
    if per_segment:
        response = send_file(out, as_attachment=True, download_name=out.name)
        response.headers["X-Sync-Before"] = json.dumps(_windows(result.before))
        response.headers["X-Sync-After"] = json.dumps(_windows(result.after or []))
        response.headers["X-Sync-Stretches"] = json.dumps([s.to_dict() for s in result.stretches])
        return response
    summary = result.to_dict()
    response = send_file(out, as_attachment=True, download_name=out.name)
    response.headers["X-Sync-Before"] = json.dumps(summary["before"])
    response.headers["X-Sync-After"] = json.dumps(summary["after"])
    response.headers["X-Sync-Shift-Frames"] = str(result.shift_frames)
    return response


def _seconds(value) -> float:
    if value is None or not str(value).strip():
        return 10.0
    try:
        return float(value)  # the range is checked by the timeline pipeline
    except ValueError:
        raise InvalidArgumentError(f"window must be a number of seconds, got {value!r}") from None


def _flag(value) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _windows(windows: list[dict]) -> list[dict]:
    keep = ("start", "end", "offset_frames", "confidence", "reliable")
    return [{key: w.get(key) for key in keep} for w in windows]


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

