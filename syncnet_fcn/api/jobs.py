"""Answering a request that starts a background job (eval, timeline, ...): 202 with the job's status URL."""

from __future__ import annotations

import shutil
from pathlib import Path

from flask import jsonify, url_for


def accept_job(sync, name: str, work, *, upload_dir: Path, workspace: Path, kind: str, stages: dict):
    """Queue ``work`` on the app's job queue and answer 202; the uploads and workspace go if it is refused."""
    try:
        job = sync.submit_work(name, work, upload_dir=upload_dir, kind=kind, stages=stages, workspace=workspace)
    except BaseException:
        shutil.rmtree(upload_dir, ignore_errors=True)
        shutil.rmtree(workspace, ignore_errors=True)
        raise
    body = job.to_dict()
    body["status_url"] = url_for("job_status", job_id=job.id)
    return jsonify(body), 202, {"Location": body["status_url"]}
