"""The Gradio "Fix sync" tab: upload a clip, get a copy with its audio moved into sync, and see the
offset curves of the input and of the output side by side; or, where the offset changes over time,
correct it stretch by stretch and see the per-window readings before and after. A thin layer over
:mod:`syncnet_fcn.repair` and :mod:`syncnet_fcn.segment_fix`.
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
             out_root: Path, progress=gr.Progress(), *, per_segment: bool = False, window_s: float | None = None):
    """The click handler: ``(summary markdown, before/after offset curves, corrected file)``.

    ``per_segment``: correct stretch by stretch from per-window readings (``window_s`` seconds each,
    10 when empty); the summary then lists the stretches and the windows, and there are no curves.
    """
    from syncnet_fcn.errors import InvalidArgumentError
    from syncnet_fcn.repair import fix_video
    from syncnet_fcn.segment_fix import fix_per_segment, timeline_measure

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

        if per_segment:
            if given is not None:
                raise InvalidArgumentError("an offset applies to the whole video: clear it to correct per stretch")
            measure = timeline_measure(window_s=float(window_s or 10.0), progress=report_progress)
            result = fix_per_segment(video, out, measure=measure, force=bool(force))
            return per_segment_summary(result), None, str(result.output)
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


def per_segment_summary(result) -> str:
    """The stretches and what each window read before and after, as Markdown."""

    def clock(seconds: float) -> str:
        return f"{int(seconds // 60):02d}:{seconds % 60:05.2f}"

    def reading(window: dict | None) -> str:
        if window is None or window.get("offset_frames") is None:
            return "no reading"
        return f"{window['offset_frames']:+d} ({'reliable' if window.get('reliable') else 'unreliable'})"

    lines = ["**stretches:**", ""]
    for s in result.stretches:
        moved = "delayed" if s.offset_frames >= 0 else "advanced"
        lines.append(f"- {clock(s.start_s)}–{clock(s.end_s)}: reading {s.offset_frames:+d} → audio {moved} by "
                     f"{abs(s.offset_frames)} frames (read in {s.reliable_windows} window(s))")
    after = {(w["start"], w["end"]): w for w in result.after or []}
    lines += ["", "| window | before | after |", "|---|---|---|"]
    for w in result.before:
        later = reading(after.get((w["start"], w["end"]))) if result.after is not None else "not re-measured"
        lines.append(f"| {clock(w['start'])}–{clock(w['end'])} | {reading(w)} | {later} |")
    lines += ["", f"audio re-encoded as {result.audio_codec}; video copied packet for packet"]
    return "\n".join(lines)


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
            per_segment = gr.Checkbox(label="Correct stretch by stretch (the offset changes over time)", value=False,
                                      elem_id="fix-per-segment")
            window = gr.Number(label="Seconds per reading (stretch by stretch)", value=10.0, minimum=1,
                               elem_id="fix-window")
            run = gr.Button("Fix", variant="primary", elem_id="fix")
        with gr.Column(scale=2):
            summary = gr.Markdown("The readings before and after appear here.", elem_id="fix-summary")
            curves = gr.Plot(label="Offset curves: input (left) and corrected copy (right)", format="png",
                             elem_id="fix-curves")
            fixed = gr.File(label="Corrected video", interactive=False, elem_id="fix-output")

    def handler(video_path, offset_value, force_value, per_segment_value, window_value, progress=gr.Progress()):
        root = out_root() if callable(out_root) else out_root
        return fix_clip(video_path, offset_value, force_value, pipelines, root, progress,
                        per_segment=bool(per_segment_value), window_s=window_value)

    run.click(handler, inputs=[video, offset, force, per_segment, window], outputs=[summary, curves, fixed], api_name="fix",
              concurrency_limit=1)
