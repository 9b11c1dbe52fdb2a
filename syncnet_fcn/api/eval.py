"""``POST /api/eval``: LSE-C / LSE-D of several uploaded videos, as a background job.

The job's result is the batch document (aggregate, groups, every video's row); its files are
``results.csv`` (every video and track), ``groups.csv`` (the comparison table) and ``results.md`` (both). Uploads that are not videos become rows that say why, as on the
command line. Form fields: ``videos`` (several files), ``engine``, ``max_offset``, ``group_by``
(``none``, or ``prefix``: the part of each file name before its first ``_``).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from flask import Blueprint, current_app, request

from .. import service
from ..errors import InvalidArgumentError
from .jobs import accept_job

blueprint = Blueprint("eval", __name__)

EVAL_STAGES = {"eval": ("scoring videos", 0.0, 1.0)}
MAX_VIDEOS = 50


@blueprint.post("/api/eval")
def create_eval_job():
    from ..batch import EvalOptions, ResultCache, VideoJob, run_batch
    from ..writers import get_writer

    uploads = [f for f in request.files.getlist("videos") if f and f.filename]
    if not uploads:
        raise InvalidArgumentError("send the videos as multipart form fields named 'videos'")
    if len(uploads) > MAX_VIDEOS:
        raise InvalidArgumentError(f"at most {MAX_VIDEOS} videos per evaluation, got {len(uploads)}")
    engine = (request.form.get("engine") or "auto").strip().lower()
    engines = service.parse_engines(engine, current_app.config["SYNC_WEIGHTS"])
    if len(engines) != 1:
        raise InvalidArgumentError("an evaluation runs one engine")
    max_offset = service.parse_max_offset(request.form.get("max_offset"))
    group_by = (request.form.get("group_by") or "none").strip().lower()
    if group_by not in ("none", "prefix"):
        raise InvalidArgumentError(f"group_by must be 'none' or 'prefix', got {group_by!r}")
    config = current_app.config
    sync = current_app.extensions["syncnet_fcn"]

    root = config["SYNC_UPLOAD_DIR"]
    upload_dir = Path(tempfile.mkdtemp(prefix="syncnet_fcn_eval_", dir=root))
    workspace = Path(tempfile.mkdtemp(prefix="syncnet_fcn_eval_out_", dir=root))
    try:
        jobs = []
        for number, upload in enumerate(uploads):
            name = service.safe_filename(upload.filename, default=f"video{number}")
            folder = upload_dir / str(number)  # two uploads may share a name
            folder.mkdir()
            path = folder / name
            upload.save(path)
            group = name.split("_", 1)[0] if group_by == "prefix" and "_" in name else "all"
            jobs.append(VideoJob(path, group))
    except BaseException:
        shutil.rmtree(upload_dir, ignore_errors=True)
        shutil.rmtree(workspace, ignore_errors=True)
        raise
    options = EvalOptions(engine=engines[0], weights=config["SYNC_WEIGHTS"], max_offset=max_offset,
                          device=config["SYNC_DEVICE"])
    cache_root = config.get("SYNC_EVAL_CACHE")
    cache = ResultCache(cache_root) if cache_root else ResultCache.default()

    def work(job, progress) -> dict:
        batch = run_batch(jobs, options, cache=cache,
                          progress=lambda done, total, _cached: progress("eval", done / max(total, 1)))
        for writer, name in (("eval-csv", "results.csv"), ("eval-md", "results.md"), ("eval-groups-csv", "groups.csv")):
            path = get_writer(writer).write(batch, workspace / name)
            job.files[path.name] = path
        document = batch.to_dict()
        for row in document["videos"]:  # server paths never reach the client
            row["video"] = Path(row["video"]).name
        return document

    return accept_job(sync, f"{len(jobs)} videos", work, upload_dir=upload_dir, workspace=workspace, kind="eval",
                      stages=EVAL_STAGES)
