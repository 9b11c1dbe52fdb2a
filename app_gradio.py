"""Gradio demo (the Hugging Face Space's app_file): upload a clip and compare every sync engine.

    python app_gradio.py          # serves on 127.0.0.1:7860 (--host/--port, or $HOST / $GRADIO_SERVER_PORT)

A Space sets ``HOST=0.0.0.0`` (or ``GRADIO_SERVER_NAME``). Uploads are limited like the REST API's
(``SYNCNET_FCN_MAX_UPLOAD_MB``, default 200); result files live in one temporary folder, made on the
first analysis and removed when the process exits.

A thin layer over :mod:`syncnet_fcn.service` and :mod:`syncnet_fcn.plots`; no detection logic here.
"""

from __future__ import annotations

import argparse
import atexit
import html
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

import gradio as gr

from app_gradio_timeline import timeline_tab
from syncnet_fcn import __version__, memory, plots, service
from syncnet_fcn.engines import ENGINE_NAMES
from syncnet_fcn.errors import SyncNetError
from syncnet_fcn.native_logs import filter_native_stderr

from gradio_fix import build_fix_tab  # noqa: E402  (beside this file)
from gradio_monitor import build_monitor_tab

log = logging.getLogger("syncnet_fcn.app_gradio")
HERE = Path(__file__).resolve().parent
CLIPS = Path(os.environ.get("SYNCNET_FCN_SHARED", HERE.parent / "shared")) / "clips"
EXAMPLE_CLIPS = ("syncnet_example.avi", "syncnetfcn_test_offset5.avi", "syncnetfcn_test_offset12.avi",
                 "visualvoice_interview.mp4")
VIDEO_TYPES = ["video", ".avi", ".mkv", ".mpg", ".mpeg", ".mov", ".mp4", ".m4v", ".webm", ".flv", ".ts", ".wmv"]
OUTPUT_TTL_S = 3600  # result files (JSON, annotated video) are kept this long for download

PIPELINES = service.PipelineCache()
MAX_UPLOAD_BYTES = int(float(os.environ.get("SYNCNET_FCN_MAX_UPLOAD_MB", "200")) * 2**20)  # as app.py
_output_root: Path | None = None  # made on first use, removed at exit

STAGES = {"tracks": ("Finding faces", 0.0, 0.5), "sync": ("Measuring sync", 0.5, 0.85)}

INTRO = """
# syncnet_fcn · audio-video sync
Upload a talking-face video (or pick an example). Every selected engine finds each face, tracks it and
measures the shift between the sound and the lips. **A positive offset means the audio is early** (it
leads the video); negative means it is late. One frame is 40 ms.
"""


def engine_choices() -> tuple[list[tuple[str, str]], list[str], str]:
    """Checkbox choices (label, name), the default selection, and a note on unavailable engines."""
    status = service.engine_status()
    choices, default, notes = [], [], []
    for name in ENGINE_NAMES:
        entry = status.get(name, {"available": False, "reason": "unknown engine"})
        label = plots.engine_label(name)
        if entry["available"]:
            default.append(name)
        else:
            label += " (unavailable)"
            notes.append(f"- **{plots.engine_label(name)}**: {entry['reason']}")
        choices.append((label, name))
    return choices, default, "\n".join(notes)


def analyze(video: str | None, engines: list[str], max_offset: float, progress=gr.Progress()):
    """The click handler: check the upload, run the shared pipeline, draw the figures."""
    if not video:
        raise gr.Error("Upload a video or pick an example first.", print_exception=False)
    if not engines:
        raise gr.Error("Choose at least one engine.", print_exception=False)
    name = Path(video).name
    try:
        service.check_video(video)
        max_offset = service.parse_max_offset(max_offset)
        progress(0.0, desc="Loading engines")

        def report_progress(stage: str, fraction: float) -> None:
            label, start, end = STAGES.get(stage, (stage, 0.0, 1.0))
            progress(start + (end - start) * min(max(fraction, 0.0), 1.0), desc=label)

        document, _ = service.run_analysis(PIPELINES, video, list(engines), max_offset, name, report_progress)
        reports = document["engines"]
        progress(0.87, desc="Drawing plots")
        confidence = plots.confidence_figure(reports)
        curves = plots.offset_curves_figure(reports)
        speaking = reports[plots.speaking_engine(reports)]
        turns = plots.speaking_figure(speaking)
        stills = plots.preview_figure(video, speaking)
        out_dir = _new_output_dir()
        progress(0.93, desc="Annotating the video")
        annotated = plots.write_annotated_video(video, speaking, out_dir / f"{Path(name).stem}_annotated.mp4")
        json_path = out_dir / f"{Path(name).stem}_sync.json"
        json_path.write_text(json.dumps(document, indent=2))
    except SyncNetError as exc:
        raise gr.Error(exc.message, title="Cannot analyse this video", print_exception=False) from None
    except Exception as exc:  # a bug: log it in full, show one line
        log.exception("analysis failed")
        raise gr.Error(f"internal error ({type(exc).__name__}); the server log has the details",
                       title="Something went wrong", print_exception=False) from None
    finally:
        memory.release_freed_memory()  # freed frames and features go back to the system between runs
    progress(1.0, desc="Done")
    return (summary_html(document), summary_table(document), confidence, curves, turns, str(annotated), stills,
            str(json_path))


def summary_html(document: dict) -> str:
    """One card per engine, side by side: offset in frames, ms and words; confidence; min distance; time."""
    cards = []
    for name, report in document["engines"].items():
        color = plots.engine_color(name)
        offset = report["offset_frames"]
        if offset is None:
            big, words = "–", "no reading"
        else:
            ms = round(offset * 1000 / (report.get("fps") or 25))
            signed = f"{offset:+d}" if offset else "0"
            big = f"{signed} frames <span style='font-size:15px;font-weight:400'>({ms:+d} ms)</span>"
            words = service.describe_offset(offset)
            if not report["reliable"]:
                words = ("no reliable sync: no reading" if report["min_dist"] is None
                         else f"no reliable sync (best guess: {words})")
        reliable = ("<span style='color:#1f9d55'>reliable</span>" if report["reliable"]
                    else "<span style='color:#b7791f'>unsure</span>")
        faces = len(report["tracks"])
        cards.append(f"""
<div class="sync-card" data-engine="{name}" data-offset="{'' if offset is None else offset}"
     style="flex:1 1 260px;max-width:440px;border:1px solid #e3e6eb;border-top:4px solid {color};border-radius:10px;
            padding:12px 16px;background:var(--block-background-fill, #fff)">
  <div style="font-weight:600">{html.escape(plots.engine_label(name))} · {reliable}</div>
  <div class="sync-offset" style="font-size:28px;font-weight:700;margin:4px 0">{big}</div>
  <div style="margin-bottom:6px">{html.escape(words)}</div>
  <div style="font-size:14px;line-height:1.6">
    confidence <b>{_fmt(report['confidence'])}</b> · min distance <b>{_fmt(report['min_dist'])}</b><br>
    {faces} face track{'s' if faces != 1 else ''} · {_fmt(report.get('timings', {}).get('total_s'), 1)} s
  </div>
</div>""")
    errors = document.get("engine_errors") or {}
    note = ""
    if errors:
        items = "; ".join(f"{html.escape(plots.engine_label(k))}: {html.escape(v)}" for k, v in errors.items())
        note = f"<p style='font-size:13px;opacity:.75;margin-top:8px'>Not run: {items}</p>"
    return f"<div id='sync-summary' style='display:flex;gap:14px;flex-wrap:wrap'>{''.join(cards)}</div>{note}"


TABLE_HEADERS = ["engine", "face", "frames", "offset", "ms", "confidence", "min dist", "reliable"]


def summary_table(document: dict) -> list[list]:
    """Per engine and face track: the rows of the details table (main track first)."""
    rows = []
    for row in document["summary"]:
        rows.append([plots.engine_label(row["engine"]), f"{row['track_id']}{' (main)' if row['main'] else ''}",
                     row["frames"], row["offset_frames"], row["offset_ms"], _round(row["confidence"]),
                     _round(row["min_dist"]),
                     "yes" if row["reliable"] else "no"])
    return rows


def _round(x, digits: int = 2) -> float | None:
    return None if x is None else round(float(x), digits)


def _fmt(x, digits: int = 2) -> str:
    return "–" if x is None else f"{float(x):.{digits}f}"


def _new_output_dir() -> Path:
    """A fresh directory for one run's files; runs older than OUTPUT_TTL_S are removed."""
    root = output_root()
    cutoff = time.time() - OUTPUT_TTL_S
    for old in root.glob("run_*"):
        if old.stat().st_mtime < cutoff:
            shutil.rmtree(old, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix="run_", dir=root))


def output_root() -> Path:
    """The process's folder for result files: created on first use, removed when the process exits."""
    global _output_root
    if _output_root is None or not _output_root.is_dir():
        _output_root = Path(tempfile.mkdtemp(prefix="syncnet_fcn_gradio_"))
        atexit.register(shutil.rmtree, _output_root, ignore_errors=True)
    return _output_root


def example_videos() -> list[list[str]]:
    return [[str(CLIPS / name)] for name in EXAMPLE_CLIPS if (CLIPS / name).is_file()]


def build_demo() -> gr.Blocks:
    choices, default, unavailable = engine_choices()
    with gr.Blocks(title="syncnet_fcn · audio-video sync", delete_cache=(3600, 3600)) as demo:
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=1):
                # a file box, not gr.Video: the browser cannot preview .avi/.mpg, and any container is welcome
                video = gr.File(label="Video (any format with sound)", file_types=VIDEO_TYPES, type="filepath",
                                elem_id="input-video")
                examples = example_videos()
                if examples:
                    gr.Examples(examples=examples, inputs=[video], label="Example clips",
                                example_labels=[Path(e[0]).name for e in examples])
                engines = gr.CheckboxGroup(choices=choices, value=default, label="Engines",
                                           info="Default: every engine that can run here", elem_id="engines")
                if unavailable:
                    with gr.Accordion("Why some engines are unavailable", open=False):
                        gr.Markdown(unavailable, elem_id="unavailable-engines")
                max_offset = gr.Slider(5, 30, value=service.DEFAULT_MAX_OFFSET, step=1,
                                       label="Search range (± frames)")
                run = gr.Button("Analyze", variant="primary", elem_id="analyze")
            with gr.Column(scale=2):
                summary = gr.HTML("<p style='opacity:.7'>Results appear here.</p>", elem_id="summary")
                with gr.Tabs():
                    with gr.Tab("Confidence over time"):
                        confidence_plot = gr.Plot(label="Per-frame confidence", show_label=False, format="png",
                                                  elem_id="confidence-plot")
                    with gr.Tab("Offset curves"):
                        curves_plot = gr.Plot(label="Offset curves", show_label=False, format="png",
                                              elem_id="offset-plot")
                    with gr.Tab("Who speaks when"):
                        turns_plot = gr.Plot(label="Who speaks when", show_label=False, format="png",
                                             elem_id="speaking-plot")
                    with gr.Tab("Annotated video"):
                        annotated = gr.Video(label="Faces and who is speaking", interactive=False, height=420,
                                             elem_id="annotated-video")
                    with gr.Tab("Faces (stills)"):
                        stills = gr.Plot(label="Faces found", show_label=False, format="png", elem_id="stills-plot")
                table = gr.Dataframe(headers=TABLE_HEADERS, label="Every engine and face track",
                                     interactive=False, elem_id="details")
                result_file = gr.File(label="Full JSON result", interactive=False, height=90, elem_id="result-json")
        timeline_tab()
        build_monitor_tab()
        gr.Markdown(f"<small>syncnet_fcn {__version__} · confidence is LSE-C, min distance is LSE-D "
                    "(SyncNet's measures).</small>")
        run.click(analyze, inputs=[video, engines, max_offset],
                  outputs=[summary, table, confidence_plot, curves_plot, turns_plot, annotated, stills, result_file],
                  api_name="analyze", concurrency_limit=1)
        with gr.Tab("Fix sync"):
            build_fix_tab(PIPELINES, output_root)
    return demo


demo = build_demo()

def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="syncnet_fcn Gradio demo")
    parser.add_argument("--host", default=os.environ.get("HOST") or os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
                        help="interface to listen on (default $HOST, $GRADIO_SERVER_NAME or 127.0.0.1)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
                        help="port (default $GRADIO_SERVER_PORT or 7860)")
    args = parser.parse_args(argv)
    filter_native_stderr()
    memory.limit_malloc_arenas()
    demo.queue(max_size=8).launch(
        server_name=args.host,
        server_port=args.port,
        max_file_size=MAX_UPLOAD_BYTES,
        allowed_paths=[str(CLIPS)] if CLIPS.is_dir() else None,
    )


if __name__ == "__main__":
    main()
