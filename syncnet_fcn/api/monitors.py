"""``/api/monitors``: live stream monitors over HTTP.

    POST   /api/monitors                {"source": "https://…/live.m3u8", "window_s": 10, ...}  → 201
    GET    /api/monitors                every monitor this server holds
    GET    /api/monitors/<id>           state, counts, the latest reading, recent alerts
    GET    /api/monitors/<id>/events    Server-Sent Events: readings, alerts and stream events as they happen
    DELETE /api/monitors/<id>           stop it

Only stream URLs are accepted (no ``file://``, no paths on this server), and at most
``MONITOR_MAX_ACTIVE`` monitors run at once. A stopped monitor is kept for ``MONITOR_TTL_S`` so its
last events can still be read.
"""

from __future__ import annotations

import itertools
import json
import logging
import threading
import time
import uuid
from collections import deque

from flask import Blueprint, Response, current_app, jsonify, request, stream_with_context, url_for

from ..errors import InvalidArgumentError, NotFoundError, SyncNetError, TooManyMonitorsError
from ..live import validate_source
from ..monitor import DEFAULT_CONSECUTIVE, DEFAULT_THRESHOLD_FRAMES, Monitor, MonitorOptions

blueprint = Blueprint("monitors", __name__)
log = logging.getLogger("syncnet_fcn.app")

DEFAULTS = {
    "MONITOR_MAX_ACTIVE": 2,  # each holds an engine and a core's worth of scoring
    "MONITOR_TTL_S": 600,  # how long a stopped monitor's status and events stay readable
    "MONITOR_EVENTS_KEPT": 500,  # events replayed to a late SSE subscriber
    "MONITOR_HEARTBEAT_S": 15.0,  # an SSE comment this often keeps proxies from closing the stream
    "MONITOR_PIPELINE_FACTORY": None,  # tests may hand monitors a stand-in pipeline
}


class LiveMonitor:
    """One running :class:`Monitor`, its thread and the events it has said (numbered, last few kept)."""

    def __init__(self, source: str, options: MonitorOptions, kept: int, pipeline=None):
        self.id = uuid.uuid4().hex[:12]
        self.source = source
        self.options = options
        self.created_at = time.time()
        self.finished_at: float | None = None
        self.events: deque[tuple[int, dict]] = deque(maxlen=kept)
        self.counter = itertools.count(1)
        self.changed = threading.Condition()
        self.latest: dict | None = None
        self.alerts: deque[dict] = deque(maxlen=20)
        self.error: str | None = None
        self.monitor = Monitor(source, options, on_event=self._record, pipeline=pipeline)
        self.thread = threading.Thread(target=self._run, name=f"monitor-{self.id}", daemon=True)

    def _record(self, event: dict) -> None:
        with self.changed:
            self.events.append((next(self.counter), event))
            if event["type"] == "reading":
                self.latest = event
            elif event["type"] in ("alert", "back_in_sync"):
                self.alerts.append(event)
            self.changed.notify_all()

    def _run(self) -> None:
        try:
            self.monitor.run()
        except SyncNetError as exc:
            self.error = exc.message
            self._record({"type": "ended", "reason": exc.message})
        except Exception as exc:  # a bug: the monitor ends, the server stays up and says so
            log.exception("monitor %s failed", self.id)
            self.error = f"internal error ({type(exc).__name__})"
            self._record({"type": "ended", "reason": self.error})
        finally:
            self.finished_at = time.time()
            with self.changed:
                self.changed.notify_all()

    @property
    def running(self) -> bool:
        return self.finished_at is None

    def to_dict(self) -> dict:
        m = self.monitor
        state = "running" if self.running and not m.stopping else ("stopping" if self.running else "stopped")
        return {"monitor_id": self.id, "source": self.source, "state": state,
                "in_sync": m.rule.in_sync, "expect_frames": self.options.expect,
                "window_s": self.options.window_s, "hop_s": self.options.hop_s,
                "threshold_frames": self.options.threshold, "consecutive": self.options.consecutive,
                "certain_confidence": m.rule.certain,  # None until the engine is loaded, or none fitted
                "readings": m.readings, "skipped": m.skipped, "alerts": m.alerts, "error": self.error,
                "latest": self.latest, "recent_alerts": list(self.alerts),
                "events_url": url_for("monitors.events", monitor_id=self.id),
                "status_url": url_for("monitors.status", monitor_id=self.id)}


class MonitorRegistry:
    def __init__(self, config):
        self.config = config
        self.monitors: dict[str, LiveMonitor] = {}
        self.lock = threading.Lock()

    def start(self, source: str, options: MonitorOptions) -> LiveMonitor:
        factory = self.config["MONITOR_PIPELINE_FACTORY"]
        with self.lock:
            self._forget_old()
            active = sum(m.running for m in self.monitors.values())
            if active >= self.config["MONITOR_MAX_ACTIVE"]:
                raise TooManyMonitorsError(f"{active} monitors are running, the most this server allows; stop one first")
            live = LiveMonitor(source, options, self.config["MONITOR_EVENTS_KEPT"],
                               pipeline=factory() if factory is not None else None)
            self.monitors[live.id] = live
        live.thread.start()
        return live

    def get(self, monitor_id: str) -> LiveMonitor:
        live = self.monitors.get(monitor_id)
        if live is None:
            raise NotFoundError("no such monitor (stopped monitors are kept for a while only)")
        return live

    def _forget_old(self) -> None:
        cutoff = time.time() - self.config["MONITOR_TTL_S"]
        for key in [k for k, m in self.monitors.items() if m.finished_at is not None and m.finished_at < cutoff]:
            del self.monitors[key]


@blueprint.record_once
def _setup(state) -> None:
    for key, value in DEFAULTS.items():
        state.app.config.setdefault(key, value)
    state.app.extensions["syncnet_fcn_monitors"] = MonitorRegistry(state.app.config)


def registry() -> MonitorRegistry:
    return current_app.extensions["syncnet_fcn_monitors"]


def _options(body: dict) -> MonitorOptions:
    def number(name, default, kind=float, low=None, high=None):
        value = body.get(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and value != int(value)):
            raise InvalidArgumentError(f"{name} must be a{'n integer' if kind is int else ' number'}")
        value = kind(value)
        if (low is not None and value < low) or (high is not None and value > high):
            raise InvalidArgumentError(f"{name} must be between {low} and {high}, got {value}")
        return value

    webhook = body.get("webhook")
    if webhook is not None:
        if not isinstance(webhook, str) or not webhook.lower().startswith(("http://", "https://")):
            raise InvalidArgumentError("webhook must be an http(s) URL")
        validate_source(webhook, allow_files=False)
    engine = body.get("engine", "auto")
    if engine not in ("auto", "syncnet", "fcn", "landmark"):
        raise InvalidArgumentError("engine must be one of auto, syncnet, fcn, landmark")
    window = number("window_s", 10.0, float, 2.0, 60.0)
    return MonitorOptions(window_s=window, hop_s=number("hop_s", 5.0, float, 0.5, window),
                          expect=number("expect_frames", 0, int, -15, 15),
                          threshold=number("threshold_frames", DEFAULT_THRESHOLD_FRAMES, int, 1, 15),
                          consecutive=number("consecutive", DEFAULT_CONSECUTIVE, int, 1, 20),
                          engine=engine, webhook=webhook,
                          give_up_after=number("give_up_after_s", 300.0, float, 5, 3600))


@blueprint.post("/api/monitors")
def create():
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("source"), str):
        raise InvalidArgumentError('send JSON with a "source" stream URL')
    source = validate_source(body["source"], allow_files=False)
    live = registry().start(source, _options(body))
    return jsonify(live.to_dict()), 201, {"Location": url_for("monitors.status", monitor_id=live.id)}


@blueprint.get("/api/monitors")
def listing():
    with registry().lock:
        monitors = list(registry().monitors.values())
    return jsonify({"monitors": [m.to_dict() for m in monitors],
                    "max_active": current_app.config["MONITOR_MAX_ACTIVE"]})


@blueprint.get("/api/monitors/<monitor_id>")
def status(monitor_id: str):
    return jsonify(registry().get(monitor_id).to_dict())


@blueprint.delete("/api/monitors/<monitor_id>")
def stop(monitor_id: str):
    live = registry().get(monitor_id)
    live.monitor.stop()
    return jsonify(live.to_dict())


@blueprint.get("/api/monitors/<monitor_id>/events")
def events(monitor_id: str):
    """Replays the kept events after ``Last-Event-ID`` (or ``?after=``), then streams new ones until the
    monitor has stopped and everything it said was sent."""
    live = registry().get(monitor_id)
    after = request.headers.get("Last-Event-ID") or request.args.get("after") or "0"
    try:
        after = int(after)
    except ValueError:
        raise InvalidArgumentError("Last-Event-ID / after must be an event number") from None
    heartbeat = float(current_app.config["MONITOR_HEARTBEAT_S"])

    def stream():
        sent = after
        yield "retry: 2000\n\n"
        while True:
            with live.changed:
                fresh = [(n, e) for n, e in live.events if n > sent]
                if not fresh:
                    if not live.running:
                        return
                    live.changed.wait(timeout=heartbeat)
                    fresh = [(n, e) for n, e in live.events if n > sent]
            if not fresh:
                yield ": still here\n\n"
                continue
            for number, event in fresh:
                sent = number
                yield f"id: {number}\nevent: {event['type']}\ndata: {json.dumps(event)}\n\n"

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return Response(stream_with_context(stream()), mimetype="text/event-stream", headers=headers)
