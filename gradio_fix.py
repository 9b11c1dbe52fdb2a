"""The Gradio "Fix sync" tab: upload a clip, get a copy with its audio moved into sync, and see the
offset curves of the input and of the output side by side. A thin layer over :mod:`syncnet_fcn.repair`.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import gradio as gr

from syncnet_fcn import plots, service
from syncnet_fcn.errors import SyncNetError

log = logging.getLogger("syncnet_fcn.gradio_fix")
FIX_STAGES = {"measuring": ("Measuring the input", 0.0, 0.45), "writing": ("Writing the corrected copy", 0.45, 0.55),
              "re-measuring": ("Measuring the output", 0.55, 0.95)}


def fix_clip(video: str | None, offset: float | None, force: bool, pipelines: service.PipelineCache,
             out_root: Path, progress=gr.Progress()):
    """The click handler: ``(summary markdown, before/after offset curves, corrected file)``."""
    from syncnet_fcn.repair import fix_video

    if not video:
        raise gr.Error("Upload a video first.", print_exception=False)
    name = Path(video).name
    try:
        service.check_video(video)
        given = None if offset is None or offset == "" else int(offset)
        out = Path(tempfile.mkdtemp(prefix="fix_", dir=out_root)) / f"{Path(name).stem}.fixed{Path(name).suffix}"

        def report_progress(stage: str, fraction: float) -> None:
            label, start, end = FIX_STAGES.get(stage, (stage, 0.0, 1.0))
            progress(start + (end - start) * min(max(fraction, 0.0), 1.0), desc=label)

        pipeline, lock = pipelines.get(["auto"])
        with lock:
            result = fix_video(video, out, offset=given, force=bool(force), pipeline=pipeline,
                               progress=report_progress)
    except SyncNetError as exc:
        raise gr.Error(exc.message, title="Cannot fix this video", print_exception=False) from None
    except Exception as exc:  # a bug: log it in full, show one line
        log.exception("fix failed")
        raise gr.Error(f"internal error ({type(exc).__name__}); the server log has the details",
                       title="Something went wrong", print_exception=False) from None
    curves = {label: report.to_dict() for label, report in (("before", result.before), ("after", result.after))
              if report is not None}
    return fix_summary(result), plots.offset_curves_figure(curves), str(result.output)


def fix_summary(result) -> str:
    data = result.to_dict()

    def line(which: str) -> str:
        reading = data[which]
        if reading is None:
            return f"**{which}:** no face to read"
        words = service.describe_offset(reading["offset_frames"])
        sure = "reliable" if reading["reliable"] else "unreliable"
        return f"**{which}:** {reading['offset_frames']:+d} frames ({words}), confidence {reading['confidence']:.2f}, {sure}"

    moved = "delayed" if result.shift_frames >= 0 else "advanced"
    how = "given" if result.offset_given else "measured"
    return "\n\n".join([line("before"), f"audio {moved} by {abs(result.shift_frames)} frames ({how}), re-encoded as "
                        f"{result.audio_codec}; video copied packet for packet", line("after")])


def build_fix_tab(pipelines: service.PipelineCache, out_root) -> None:
    """The tab's components and its click handler (call inside ``gr.Blocks``).

    ``out_root``: the folder for corrected copies, or a function giving it (made on first use).
    """
    with gr.Row():
        with gr.Column(scale=1):
            video = gr.File(label="Out-of-sync video", type="filepath", elem_id="fix-input")
            offset = gr.Number(label="Offset to correct (frames, + = audio early); empty: measure it",
                               precision=0, value=None, elem_id="fix-offset")
            force = gr.Checkbox(label="Apply even an unreliable reading", value=False, elem_id="fix-force")
            run = gr.Button("Fix", variant="primary", elem_id="fix")
        with gr.Column(scale=2):
            summary = gr.Markdown("The readings before and after appear here.", elem_id="fix-summary")
            curves = gr.Plot(label="Offset curves: input (left) and corrected copy (right)", format="png",
                             elem_id="fix-curves")
            fixed = gr.File(label="Corrected video", interactive=False, elem_id="fix-output")

    def handler(video_path, offset_value, force_value, progress=gr.Progress()):
        root = out_root() if callable(out_root) else out_root
        return fix_clip(video_path, offset_value, force_value, pipelines, root, progress)

    run.click(handler, inputs=[video, offset, force], outputs=[summary, curves, fixed], api_name="fix",
              concurrency_limit=1)
