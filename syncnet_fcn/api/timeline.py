"""``POST /api/timeline``: who talks when over a long recording, as a background job.

Form fields: ``video`` (file), optional reference photos as files named ``photo:NAME`` (several per
name allowed), ``person`` texts ``NAME=@HH:MM:SS`` (the face on screen then), ``window`` (seconds),
``engine``, ``formats`` (comma list of json, srt, vtt, rttm, csv; default all), ``voices`` (0/1).
Answers 202 with the job; ``GET /api/jobs/<id>`` gives status and progress, and when done the
timeline JSON as ``result`` and each format (and ``timeline.png``) under ``files``.
Bad photos, times, formats or options are refused at once with a 4xx, before any job starts.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from flask import Blueprint, current_app, request

from ..errors import InvalidArgumentError
from ..service import safe_filename
from .jobs import accept_job
from .uploads import receive_upload

bp = Blueprint("timeline", __name__)

ALL_FORMATS = ("json", "srt", "vtt", "rttm", "csv")
STAGES = {"timeline": ("reading the recording", 0.0, 0.97)}


def _people(upload_dir: Path):
    from ..timeline import PersonSpec

    specs: dict[str, PersonSpec] = {}
    for field, storage in request.files.items(multi=True):
        if not field.startswith("photo:"):
            continue
        name = field.split(":", 1)[1].strip()
        spec = specs.setdefault(name, PersonSpec(name, [], []))
        folder = upload_dir / "photos" / safe_filename(name, "person")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{len(spec.photos)}_{safe_filename(storage.filename, 'photo.jpg')}"
        storage.save(path)
        spec.photos.append(str(path))
    for text in request.form.getlist("person"):
        parsed = PersonSpec.parse(text)
        if parsed.photos:
            raise InvalidArgumentError("send reference photos as files named photo:NAME, not in the person field")
        specs.setdefault(parsed.name, PersonSpec(parsed.name, [], [])).times_s.extend(parsed.times_s)
    for spec in specs.values():
        if not spec.name or spec.name == "unknown" or (spec.name.startswith("P") and spec.name[1:].isdigit()):
            raise InvalidArgumentError(f"person name {spec.name!r} is empty or reserved for unknown faces")
    return list(specs.values())


def _formats() -> list[str]:
    from ..writers import get_writer

    text = request.form.get("formats") or ",".join(ALL_FORMATS)
    names = [f.strip().lower() for f in text.split(",") if f.strip()]
    for name in names:
        get_writer(name)
    return names


@bp.post("/api/timeline")
def create_timeline_job():
    from ..timeline import TimelinePipeline

    formats = _formats()
    try:
        window = float(request.form.get("window") or 10)
    except ValueError:
        raise InvalidArgumentError("window must be a number of seconds") from None
    engine = (request.form.get("engine") or "landmark").strip().lower()
    voices = (request.form.get("voices") or "1").strip().lower() not in ("0", "false", "no")
    upload_dir, video, name = receive_upload(current_app)
    workspace = Path(tempfile.mkdtemp(prefix="syncnet_fcn_timeline_", dir=current_app.config["SYNC_UPLOAD_DIR"]))
    try:
        pipe = TimelinePipeline(engine=engine, window_s=window, people=_people(upload_dir), voices=voices)
        pipe.check_enrolment(video)  # a bad photo or a time without a face is refused now, not in the job
    except BaseException:
        shutil.rmtree(upload_dir, ignore_errors=True)
        shutil.rmtree(workspace, ignore_errors=True)
        raise

    def work(job, progress) -> dict:
        from ..timeline_plot import write_timeline_plot
        from ..writers import get_writer

        pipe.progress = lambda done, total: progress("timeline", done / max(total, 1))
        timeline = pipe.run(video, checkpoint=workspace / "timeline.partial.jsonl")
        stem = Path(name).stem or "timeline"
        for fmt in formats:
            writer = get_writer(fmt)
            job.files[f"{stem}{writer.extension}"] = writer.write(timeline, workspace / f"{stem}{writer.extension}")
        job.files[f"{stem}.png"] = write_timeline_plot(timeline, workspace / f"{stem}.png")
        return timeline.to_dict()

    sync = current_app.extensions["syncnet_fcn"]
    return accept_job(sync, name, work, upload_dir=upload_dir, workspace=workspace, kind="timeline",
                      stages=STAGES)
