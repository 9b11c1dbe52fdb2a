"""REST API and web page for syncnet_fcn (Flask).

    python app.py                 # waitress on 127.0.0.1:5000 ($HOST/$PORT or --host/--port)
    curl -F video=@talk.mp4 http://127.0.0.1:5000/api/detect

Production: ``waitress-serve --listen=127.0.0.1:5000 --threads=8 app:app`` (or ``python app.py``), with
``SYNCNET_FCN_API_KEY`` set whenever other machines can reach the port; then every ``/api`` route but
health and the OpenAPI document needs ``Authorization: Bearer <key>``. ``python app.py --dev`` runs
Flask's development server instead.

Endpoints: ``POST /api/detect`` (the JSON of ``syncnet-fcn detect``), ``POST /api/analyze`` (every
engine, per-frame curves, plots), ``POST /api/jobs`` + ``GET /api/jobs/<id>`` (the same analysis in
the background, with progress, for the web page), ``GET /api/health``, ``GET /api/openapi.json``,
and the page at ``/``. All detection is the library's (:mod:`syncnet_fcn.service`,
:class:`syncnet_fcn.pipeline.SyncPipeline`); this module only moves uploads and answers.
"""

from __future__ import annotations

import argparse
import hmac
import importlib
import json
import logging
import os
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from flask import Flask, jsonify, render_template, request, send_file, url_for
from werkzeug.exceptions import HTTPException

from syncnet_fcn import __version__, memory, plots, service
from syncnet_fcn.api.uploads import receive_upload
from syncnet_fcn.api import timeline as timeline_api
from syncnet_fcn.api import monitors as monitors_api
from syncnet_fcn.errors import InvalidArgumentError, NotFoundError, ServerBusyError, SyncNetError
from syncnet_fcn.native_logs import filter_native_stderr

log = logging.getLogger("syncnet_fcn.app")
HERE = Path(__file__).resolve().parent

DEFAULT_CONFIG = {
    # uploads above this are refused with 413 before their body is read
    "MAX_CONTENT_LENGTH": int(float(os.environ.get("SYNCNET_FCN_MAX_UPLOAD_MB", "200")) * 2**20),
    # analyses that run at once; each holds a decoded video's worth of work on the CPU
    "SYNC_WORKERS": int(os.environ.get("SYNCNET_FCN_WORKERS", "1")),
    # how long a synchronous request waits for a free worker before it is answered 503
    "SYNC_QUEUE_WAIT_S": float(os.environ.get("SYNCNET_FCN_QUEUE_WAIT_S", "15")),
    # background jobs accepted (running + waiting) before new ones get 503
    "SYNC_MAX_PENDING_JOBS": int(os.environ.get("SYNCNET_FCN_MAX_JOBS", "4")),
    "SYNC_RETRY_AFTER_S": 30,
    "SYNC_JOB_TTL_S": 900,
    "SYNC_WEIGHTS": None,  # None: the library's default weights resolution
    "SYNC_DEVICE": os.environ.get("SYNCNET_FCN_DEVICE", "cpu"),
    "SYNC_UPLOAD_DIR": None,  # where upload workspaces are made (None: the system temp dir)
    "SYNC_PIPELINE_FACTORY": None,  # tests may inject a stand-in for SyncPipeline
    # when set, every /api route but PUBLIC_API_PATHS needs "Authorization: Bearer <key>"
    "SYNC_API_KEY": os.environ.get("SYNCNET_FCN_API_KEY") or None,
    # form fields (parts) one request may carry; werkzeug's own guard, named here for its error message
    "MAX_FORM_PARTS": 1000,
}

PUBLIC_API_PATHS = {"/api/health", "/api/openapi.json"}

STAGES = {"tracks": ("finding faces", 0.0, 0.45), "sync": ("measuring sync", 0.45, 0.9)}


@dataclass
class Job:
    id: str
    video_name: str
    state: str = "queued"  # queued → running → done | error
    stage: str = "waiting for a free worker"
    progress: float = 0.0
    result: dict | None = None
    error: dict | None = None
    finished_at: float | None = None
    created_at: float = field(default_factory=time.time)
    kind: str = "analyze"  # which resource made it: analyze, eval, timeline, fix, ...
    # files the job produced, by download name (GET /api/jobs/<id>/files/<name>); removed with the job
    files: dict[str, Path] = field(default_factory=dict)
    workspace: Path | None = None  # removed when the job is forgotten (holds ``files``)

    def to_dict(self) -> dict:
        out = {"job_id": self.id, "kind": self.kind, "state": self.state, "stage": self.stage,
               "progress": round(self.progress, 3), "video": self.video_name}
        if self.result is not None:
            out["result"] = self.result
        if self.error is not None:
            out["error"] = self.error
        if self.files:
            out["files"] = {name: url_for("job_file", job_id=self.id, name=name) for name in self.files}
        return out


class SyncService:
    """Per-app state: the shared pipelines, the worker slots, and the background jobs."""

    def __init__(self, config: dict):
        self.config = config
        self.pipelines = service.PipelineCache(weights=config["SYNC_WEIGHTS"], device=config["SYNC_DEVICE"],
                                               factory=config["SYNC_PIPELINE_FACTORY"])
        self.slots = threading.BoundedSemaphore(max(1, int(config["SYNC_WORKERS"])))
        self.jobs: dict[str, Job] = {}
        self.jobs_lock = threading.Lock()

    # -- worker slots -------------------------------------------------------------------------------------

    def acquire_slot(self, wait_s: float | None = None) -> None:
        wait_s = self.config["SYNC_QUEUE_WAIT_S"] if wait_s is None else wait_s
        if not self.slots.acquire(timeout=max(0.0, wait_s)):
            raise ServerBusyError("all workers are busy; try again shortly")

    # -- background jobs ----------------------------------------------------------------------------------

    def submit(self, upload_dir: Path, video: Path, video_name: str, engines: list[str], max_offset: int,
               with_plots: bool) -> Job:
        """Queue an analysis; the job owns ``upload_dir`` and removes it when done."""

        def work(job: Job, progress) -> dict:
            def drawing() -> None:
                job.stage, job.progress = "drawing plots", max(job.progress, 0.9)

            return self.analyze(video, job.video_name, engines, max_offset, with_plots, progress, on_plots=drawing)

        return self.submit_work(video_name, work, upload_dir=upload_dir, kind="analyze")

    def submit_work(self, name: str, work, upload_dir: Path | None = None, kind: str = "analyze",
                    stages: dict | None = None, workspace: Path | None = None) -> Job:
        """Queue any long piece of work as a job (analysis, timeline, eval, fix, ...).

        ``work(job, progress)`` runs in a worker slot and returns the JSON result; ``progress(stage,
        fraction)`` maps the library's progress hooks onto the job through ``stages`` (stage name →
        (label, start, end)). It may put output files in ``job.files`` (name → path inside
        ``workspace``), served by ``GET /api/jobs/<id>/files/<name>`` until the job is forgotten.
        ``upload_dir`` (the inputs) is removed when the work ends; ``workspace`` when the job is forgotten.
        """
        with self.jobs_lock:
            self._forget_old_jobs()
            pending = sum(job.state in ("queued", "running") for job in self.jobs.values())
            if pending >= self.config["SYNC_MAX_PENDING_JOBS"]:
                raise ServerBusyError("too many jobs waiting; try again shortly")
            job = Job(id=uuid.uuid4().hex, video_name=name, kind=kind, workspace=workspace)
            self.jobs[job.id] = job
        thread = threading.Thread(target=self._run_job, args=(job, work, upload_dir, stages or STAGES),
                                  daemon=True, name=f"job-{job.id[:8]}")
        thread.start()
        return job

    def _run_job(self, job: Job, work, upload_dir: Path | None, stages: dict) -> None:
        result = error = None
        try:
            self.slots.acquire()
            try:
                job.state = "running"

                def progress(stage: str, fraction: float) -> None:
                    label, start, end = stages.get(stage, (stage, job.progress, job.progress))
                    job.stage = label
                    job.progress = max(job.progress, start + (end - start) * min(max(fraction, 0.0), 1.0))

                result = work(job, progress)
            finally:
                self.slots.release()
        except SyncNetError as exc:
            error = {"code": exc.code, "message": exc.message}
        except Exception as exc:  # a bug: keep the server alive and say so
            log.exception("%s job %s failed", job.kind, job.id)
            error = {"code": "internal_error", "message": f"internal error ({type(exc).__name__})"}
        finally:
            # the upload goes before the job reads as finished, so "done" means nothing is left behind
            if upload_dir is not None:
                shutil.rmtree(upload_dir, ignore_errors=True)
            memory.release_freed_memory()
            job.finished_at = time.time()
            if error is None and result is not None:
                job.result, job.stage, job.progress, job.state = result, "done", 1.0, "done"
            else:
                job.error, job.state = error or {"code": "internal_error", "message": "internal error"}, "error"

    def _forget_old_jobs(self) -> None:
        cutoff = time.time() - self.config["SYNC_JOB_TTL_S"]
        for job_id in [k for k, j in self.jobs.items() if j.finished_at is not None and j.finished_at < cutoff]:
            job = self.jobs.pop(job_id)
            if job.workspace is not None:
                shutil.rmtree(job.workspace, ignore_errors=True)

    # -- the work -----------------------------------------------------------------------------------------

    def analyze(self, video: Path, video_name: str, engines: list[str], max_offset: int, with_plots: bool,
                progress=None, on_plots=None) -> dict:
        document, _ = service.run_analysis(self.pipelines, video, engines, max_offset, video_name, progress)
        if with_plots:
            if on_plots is not None:
                on_plots()
            document["plots"] = render_plots(video, document["engines"])
        return document


def render_plots(video: Path, reports: dict[str, dict]) -> dict:
    """The four figures as inline PNG data URIs."""
    speaking = reports[plots.speaking_engine(reports)]
    figures = {
        "confidence": plots.confidence_figure(reports),
        "offset_curves": plots.offset_curves_figure(reports),
        "speaking": plots.speaking_figure(speaking),
        "preview": plots.preview_figure(video, speaking),
    }
    return {name: plots.png_data_uri(plots.figure_png(fig)) for name, fig in figures.items()}


# -- the app ----------------------------------------------------------------------------------------------


def create_app(config: dict | None = None) -> Flask:
    app = Flask(__name__, template_folder=str(HERE / "templates"), static_folder=str(HERE / "static"))
    app.config.update(DEFAULT_CONFIG)
    app.config.update(config or {})
    app.json.sort_keys = False
    sync = SyncService(app.config)
    app.extensions["syncnet_fcn"] = sync
    app.register_blueprint(importlib.import_module("syncnet_fcn.api.eval").blueprint)
    app.register_blueprint(importlib.import_module("syncnet_fcn.api.fix").blueprint)
    app.register_blueprint(timeline_api.bp)
    app.register_blueprint(monitors_api.blueprint)

    @app.before_request
    def require_api_key():
        # app-wide, so every blueprint's routes are covered too
        key = app.config["SYNC_API_KEY"]
        if not key or not request.path.startswith("/api/") or request.path in PUBLIC_API_PATHS:
            return None
        scheme, _, given = (request.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), key.encode()):
            return None
        message = ("this server requires an API key: send it as 'Authorization: Bearer <key>'"
                   if not given else "the API key given is not this server's")
        return error_response("unauthorized", message, 401, {"WWW-Authenticate": 'Bearer realm="syncnet_fcn"'})

    @app.after_request
    def give_memory_back(response):
        # a finished analysis leaves freed buffers in malloc's arenas; hand them back to the system
        if request.method == "POST":
            memory.release_freed_memory()
        return response

    @app.before_request
    def refuse_oversized_body():
        # Decide on the declared length alone, before anything reads the body.
        limit = app.config["MAX_CONTENT_LENGTH"]
        if limit is not None and request.content_length is not None and request.content_length > limit:
            return error_response("too_large", f"upload is larger than the {_megabytes(limit)} limit", 413)
        return None

    @app.get("/")
    def index():
        return render_template("index.html", max_upload_bytes=app.config["MAX_CONTENT_LENGTH"],
                               max_upload=_megabytes(app.config["MAX_CONTENT_LENGTH"]), version=__version__,
                               api_key_required=bool(app.config["SYNC_API_KEY"]))

    @app.get("/api/health")
    def health():
        status = service.engine_status(app.config["SYNC_WEIGHTS"])
        runnable = [name for name, s in status.items() if s["available"]]
        return jsonify({
            "status": "ok",
            "version": __version__,
            "engines": status,
            "default_engines": runnable or ["auto"],
            "api_key_required": bool(app.config["SYNC_API_KEY"]),
            "limits": {
                "max_upload_bytes": app.config["MAX_CONTENT_LENGTH"],
                "workers": int(app.config["SYNC_WORKERS"]),
                "max_offset": {"min": service.MAX_OFFSET_RANGE[0], "max": service.MAX_OFFSET_RANGE[1],
                               "default": service.DEFAULT_MAX_OFFSET},
            },
        })

    @app.get("/api/openapi.json")
    def openapi():
        document = json.loads((HERE / "static" / "openapi.json").read_text())
        document["info"]["version"] = __version__
        return jsonify(document)

    @app.post("/api/detect")
    def detect():
        engine = (request.form.get("engine") or "auto").strip().lower()
        engines = service.parse_engines(engine, app.config["SYNC_WEIGHTS"])
        if len(engines) != 1:
            raise InvalidArgumentError("detect runs one engine: use /api/analyze to compare several")
        max_offset = service.parse_max_offset(request.form.get("max_offset"))
        with received_video(app) as (video, name):
            sync.acquire_slot()
            try:
                _, reports = service.run_analysis(sync.pipelines, video, engines, max_offset, name)
            finally:
                sync.slots.release()
        report = next(iter(reports.values())).to_dict(full=False)
        report["video"] = name
        return jsonify(report)

    @app.post("/api/analyze")
    def analyze():
        engines, max_offset, with_plots = _analysis_options(app)
        with received_video(app) as (video, name):
            sync.acquire_slot()
            try:
                document = sync.analyze(video, name, engines, max_offset, with_plots)
            finally:
                sync.slots.release()
        return jsonify(document)

    @app.post("/api/jobs")
    def create_job():
        engines, max_offset, with_plots = _analysis_options(app)
        upload_dir, video, name = receive_upload(app)
        try:
            job = sync.submit(upload_dir, video, name, engines, max_offset, with_plots)
        except BaseException:
            shutil.rmtree(upload_dir, ignore_errors=True)
            raise
        body = job.to_dict()
        body["status_url"] = url_for("job_status", job_id=job.id)
        return jsonify(body), 202, {"Location": body["status_url"]}

    @app.get("/api/jobs/<job_id>")
    def job_status(job_id: str):
        job = sync.jobs.get(job_id)
        if job is None:
            raise NotFoundError("no such job (finished jobs are kept for a while only)")
        return jsonify(job.to_dict())

    @app.get("/api/jobs/<job_id>/files/<name>")
    def job_file(job_id: str, name: str):
        job = sync.jobs.get(job_id)
        path = job.files.get(name) if job is not None else None
        if path is None or not Path(path).is_file():
            raise NotFoundError("no such job file (finished jobs are kept for a while only)")
        return send_file(path, as_attachment=True, download_name=name)

    @app.errorhandler(SyncNetError)
    def on_sync_error(exc: SyncNetError):
        headers = {"Retry-After": str(app.config["SYNC_RETRY_AFTER_S"])} if exc.http_status == 503 else {}
        return error_response(exc.code, exc.message, exc.http_status, headers)

    @app.errorhandler(HTTPException)
    def on_http_error(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        if exc.code == 413:
            code = "too_large"
            message = _too_large_message(app)
        else:
            message = exc.description or exc.name
        return error_response(code, message, exc.code or 500)

    @app.errorhandler(Exception)
    def on_bug(exc: Exception):
        log.exception("unhandled error")
        return error_response("internal_error", f"internal error: {type(exc).__name__}", 500)

    return app


def error_response(code: str, message: str, status: int, headers: dict | None = None):
    return jsonify({"error": {"code": code, "message": message}}), status, headers or {}


def _analysis_options(app: Flask) -> tuple[list[str], int, bool]:
    form = request.form
    requested = form.getlist("engines") or form.getlist("engine")
    if len(requested) == 1:
        requested = requested[0]
    engines = service.parse_engines(requested or None, app.config["SYNC_WEIGHTS"])
    max_offset = service.parse_max_offset(form.get("max_offset"))
    plots_mode = (form.get("plots") or "inline").strip().lower()
    if plots_mode not in ("inline", "none"):
        raise InvalidArgumentError(f"plots must be 'inline' or 'none', got {plots_mode!r}")
    return engines, max_offset, plots_mode == "inline"


class received_video:
    """``with received_video(app) as (path, name):`` — the checked upload, removed on exit."""

    def __init__(self, app: Flask):
        self.app = app
        self.upload_dir: Path | None = None

    def __enter__(self) -> tuple[Path, str]:
        self.upload_dir, path, name = receive_upload(self.app)
        return path, name

    def __exit__(self, *exc) -> None:
        if self.upload_dir is not None:
            shutil.rmtree(self.upload_dir, ignore_errors=True)


def _too_large_message(app: Flask) -> str:
    """Why werkzeug refused the body: its size, or (a small body) too many form fields."""
    limit = app.config["MAX_CONTENT_LENGTH"]
    declared = request.content_length
    if declared is not None and (limit is None or declared <= limit):
        return (f"the form has too many fields (at most {app.config['MAX_FORM_PARTS']}): send the video "
                "and the few options the endpoint documents")
    return f"upload is larger than the {_megabytes(limit)} limit (the server's SYNCNET_FCN_MAX_UPLOAD_MB)"


def _megabytes(n: int | None) -> str:
    if n is None:
        return "unlimited"
    return f"{n / 2**20:.0f} MB" if n >= 2**20 else f"{n / 2**10:.0f} KB"


memory.limit_malloc_arenas()  # before the worker threads start: each would otherwise get its own arena
app = create_app()


def serve(argv: list[str] | None = None) -> None:
    """``python app.py [--host H] [--port P] [--dev]``: waitress (Flask's server with --dev) on 127.0.0.1."""
    parser = argparse.ArgumentParser(description="syncnet_fcn REST API and web page")
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"),
                        help="interface to listen on (default $HOST or 127.0.0.1; 0.0.0.0 = every interface: "
                             "set SYNCNET_FCN_API_KEY then)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "5000")),
                        help="port (default $PORT or 5000)")
    parser.add_argument("--threads", type=int, default=8, help="waitress request threads (default 8)")
    parser.add_argument("--dev", action="store_true", help="Flask's development server instead of waitress")
    args = parser.parse_args(argv)
    filter_native_stderr()
    logging.basicConfig(level=logging.INFO)
    if args.host not in ("127.0.0.1", "localhost", "::1") and not app.config["SYNC_API_KEY"]:
        log.warning("listening on %s without SYNCNET_FCN_API_KEY: anyone who can reach this port can use the API",
                    args.host)
    if args.dev:
        app.run(host=args.host, port=args.port, threaded=True)
        return
    from waitress import serve as waitress_serve

    limit = app.config["MAX_CONTENT_LENGTH"]
    # waitress buffers a body before the app sees it: it stops reading (413) at the same limit
    waitress_serve(app, host=args.host, port=args.port, threads=args.threads,
                   max_request_body_size=(limit + 2**20) if limit else 2**30)


if __name__ == "__main__":
    serve()
