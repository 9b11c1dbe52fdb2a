"""The Gradio demo's "Live monitor" tab: watch a stream URL, chart each window's offset and confidence.

A thin layer over :class:`syncnet_fcn.monitor.Monitor`: the same URL rules as the REST API (stream URLs
only, never a file on the server) and a cap on monitors running at once.
"""

from __future__ import annotations

import threading
import time
import uuid

import gradio as gr
import pandas as pd

from syncnet_fcn.errors import SyncNetError
from syncnet_fcn.live import validate_source
from syncnet_fcn.monitor import Monitor, MonitorOptions

MAX_ACTIVE = 2
REFRESH_S = 1.0
MAX_POINTS = 240  # windows kept on the chart (20 minutes at a 5 s hop)
PIPELINE_FACTORY = None  # tests may hand monitors a stand-in pipeline

_running: dict[str, Monitor] = {}
_lock = threading.Lock()


def _chart(readings: list[dict]) -> pd.DataFrame:
    rows = []
    for r in readings[-MAX_POINTS:]:
        if r["offset_frames"] is not None:
            rows.append({"stream_s": r["stream_end_s"], "value": r["offset_frames"], "series": "offset (frames)"})
        if r["confidence"] is not None:
            rows.append({"stream_s": r["stream_end_s"], "value": r["confidence"], "series": "confidence"})
    return pd.DataFrame(rows, columns=["stream_s", "value", "series"])


def _status(monitor: Monitor, readings: list[dict]) -> str:
    if not readings:
        return f"**{monitor.state}** · waiting for the first window"
    r = readings[-1]
    offset = "–" if r["offset_frames"] is None else f"{r['offset_frames']:+d}"
    sync = "in sync" if monitor.rule.in_sync else "**OUT OF SYNC**"
    return (f"{sync} · stream {r['stream_end_s']:.0f} s · faces {'–' if r['faces'] is None else r['faces']} · offset {offset} frames · "
            f"{'reliable' if r['reliable'] else 'unreliable'} · latency {r['latency_s']:.1f} s · "
            f"{monitor.readings} windows, {monitor.skipped} skipped, {monitor.alerts} alerts")


def watch(source: str, expect: float, session: str | None):
    """Generator: (status, chart, log, session id) every second until the monitor ends."""
    try:
        source = validate_source(source or "", allow_files=False)
    except SyncNetError as exc:
        raise gr.Error(exc.message) from None
    with _lock:
        if len(_running) >= MAX_ACTIVE:
            raise gr.Error(f"{MAX_ACTIVE} monitors are running, the most this demo allows; stop one first")
        key = uuid.uuid4().hex
        readings: list[dict] = []
        notes: list[str] = []

        def on_event(event: dict) -> None:
            if event["type"] == "reading":
                readings.append(event)
                del readings[:-MAX_POINTS]
            elif event.get("message") or event["type"] in ("reconnected", "ended", "disconnected"):
                detail = event.get("message") or event.get("reason") or f"gap {event.get('gap_s')} s"
                notes.insert(0, f"{time.strftime('%H:%M:%S')} {event['type']}: {detail}")
                del notes[50:]

        monitor = Monitor(source, MonitorOptions(expect=int(expect or 0)), on_event=on_event,
                          pipeline=PIPELINE_FACTORY() if PIPELINE_FACTORY is not None else None)
        _running[key] = monitor
    thread = threading.Thread(target=monitor.run, daemon=True, name="gradio-monitor")
    thread.start()
    try:
        while thread.is_alive():
            yield _status(monitor, readings), _chart(readings), "\n".join(notes), key
            thread.join(timeout=REFRESH_S)
        yield _status(monitor, readings), _chart(readings), "\n".join(notes), None
    finally:
        monitor.stop()
        with _lock:
            _running.pop(key, None)


def stop(session: str | None):
    monitor = _running.get(session or "")
    if monitor is not None:
        monitor.stop()
    return None


def build_monitor_tab() -> None:
    """Adds the tab to the enclosing ``gr.Blocks``."""
    with gr.Tab("Live monitor"):
        gr.Markdown("Watch a live stream (HLS `…m3u8`, `rtmp://`, `rtsp://`, `srt://`, `http(s)://`): a reading "
                    "every 5 s over the last 10 s, an alert when the speaking face's offset stays 2 frames or "
                    "more from the expected one.")
        with gr.Row():
            url = gr.Textbox(label="Stream URL", placeholder="https://example.org/live/index.m3u8", scale=4,
                             elem_id="monitor-url")
            expect = gr.Number(value=0, precision=0, label="Expected offset (frames)", scale=1)
            start = gr.Button("Start", variant="primary", elem_id="monitor-start")
            halt = gr.Button("Stop", elem_id="monitor-stop")
        status = gr.Markdown(elem_id="monitor-status")
        chart = gr.LinePlot(x="stream_s", y="value", color="series", x_title="stream time (s)",
                            y_title="offset (frames) / confidence", label="Each window", elem_id="monitor-chart")
        log = gr.Textbox(label="Alerts and stream events (newest first)", lines=6, interactive=False)
        session = gr.State(None)
        start.click(watch, inputs=[url, expect, session], outputs=[status, chart, log, session],
                    api_name="monitor")
        halt.click(stop, inputs=[session], outputs=[session])
