"""The Gradio tab for long recordings: who talks or sings when, named people, the offset over time.

``app_gradio.build_demo`` adds it with :func:`timeline_tab`; the work is the library's
(:class:`syncnet_fcn.timeline.TimelinePipeline`), this module only collects input and shows results.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import gradio as gr

from syncnet_fcn import service
from syncnet_fcn.errors import SyncNetError

log = logging.getLogger("syncnet_fcn.app_gradio")
FORMATS = ("json", "srt", "vtt", "rttm", "csv")
SEGMENT_HEADERS = ["speaker", "start (s)", "end (s)", "type", "confidence", "offset (frames)", "from"]


def run_timeline(video: str | None, person: str, photos: list[str] | None, at_time: str, window: float,
                 progress=gr.Progress()):
    """The click handler: enrol the person (if named), read the recording, write every format."""
    from syncnet_fcn.timeline import PersonSpec, TimelinePipeline
    from syncnet_fcn.timeline_plot import timeline_figure
    from syncnet_fcn.writers import get_writer

    if not video:
        raise gr.Error("Upload a recording first.", print_exception=False)
    try:
        service.check_video(video)
        people = []
        name = (person or "").strip()
        if name:
            times = [t.strip() for t in (at_time or "").split(",") if t.strip()]
            if not photos and not times:
                raise gr.Error("Give the person's reference photos or a time their face is on screen.",
                               print_exception=False)
            spec = PersonSpec.parse(f"{name}=" + ",".join([*(photos or []), *(f"@{t}" for t in times)]))
            people.append(spec)
        progress(0.0, desc="Loading models")
        pipe = TimelinePipeline(window_s=float(window), people=people,
                                progress=lambda done, total: progress(done / max(total, 1), desc="Reading the recording"))
        out_dir = Path(tempfile.mkdtemp(prefix="syncnet_fcn_timeline_"))
        timeline = pipe.run(video, checkpoint=out_dir / "timeline.partial.jsonl")
        stem = Path(video).stem
        files = [str(get_writer(fmt).write(timeline, out_dir / f"{stem}{get_writer(fmt).extension}")) for fmt in FORMATS]
    except SyncNetError as exc:
        raise gr.Error(exc.message, title="Cannot read this recording", print_exception=False) from None
    except gr.Error:
        raise
    except Exception as exc:  # a bug: log it in full, show one line
        log.exception("timeline failed")
        raise gr.Error(f"internal error ({type(exc).__name__}); the server log has the details",
                       title="Something went wrong", print_exception=False) from None
    rows = [[s["speaker"] or "", s["start"], s["end"], s["type"], s["confidence"], s["offset_frames"], s["source"]]
            for s in timeline.segments]
    jumps = "; ".join(f"{j['time_s']:.0f} s: {j['from_frames']:+d} → {j['to_frames']:+d} frames" for j in timeline.jumps)
    people = ", ".join(f"{p['label']} ({p['speaking_s']:.0f} s)" for p in timeline.people) or "nobody"
    summary = f"**Speakers:** {people}  \n**Offset jumps:** {jumps or 'none'}"
    return summary, rows, timeline_figure(timeline), files


def timeline_tab() -> None:
    """The tab's inputs, outputs and wiring (call inside a ``gr.Blocks``)."""
    with gr.Tab("Long recording: who speaks when"):
        gr.Markdown("Read a long recording once: who talks or sings when (named people from reference photos or "
                    "a moment their face is on screen; others as P1, P2, …; a voice nobody matches as *unknown*), "
                    "and the audio-video offset per window, with jumps marked.")
        with gr.Row():
            with gr.Column(scale=1):
                video = gr.File(label="Recording", type="filepath", elem_id="timeline-video")
                person = gr.Textbox(label="Person to name (optional)", placeholder="A", elem_id="timeline-person")
                photos = gr.File(label="Their reference photos", file_count="multiple", file_types=["image"],
                                 type="filepath", elem_id="timeline-photos")
                at_time = gr.Textbox(label="…or a time their face is on screen", placeholder="00:12:30",
                                     elem_id="timeline-time")
                window = gr.Slider(2, 60, value=10, step=1, label="Seconds per sync reading")
                run = gr.Button("Build the timeline", variant="primary", elem_id="timeline-run")
            with gr.Column(scale=2):
                summary = gr.Markdown(elem_id="timeline-summary")
                plot = gr.Plot(label="Offset, confidence and speakers over time", format="png", elem_id="timeline-plot")
                table = gr.Dataframe(headers=SEGMENT_HEADERS, label="Segments", interactive=False,
                                     elem_id="timeline-segments")
                files = gr.File(label="JSON, SRT, VTT, RTTM, CSV", file_count="multiple", interactive=False,
                                elem_id="timeline-files")
        run.click(run_timeline, inputs=[video, person, photos, at_time, window], outputs=[summary, table, plot, files],
                  api_name="timeline", concurrency_limit=1)
