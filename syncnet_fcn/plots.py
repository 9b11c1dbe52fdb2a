"""Figures the web front ends show: per-frame confidence, offset curves, who speaks when, and annotated
frames of the video.

Every function takes report dictionaries (``SyncReport.to_dict(full=True)``, keyed by engine name), so
the Flask API, the Gradio demo and a notebook draw the same pictures from the same JSON. Figures are
built with :class:`matplotlib.figure.Figure` directly, not ``pyplot``: no global state, safe in the
worker threads of a web server, and nothing to close.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from . import AUDIO_SAMPLE_RATE, TIMELINE_FPS

ENGINE_LABELS = {"syncnet": "SyncNet", "fcn": "FCN-SyncNet", "landmark": "Landmark", "fused": "Fused (landmark + FCN)"}
ENGINE_COLORS = {"syncnet": "#1f6fb4", "fcn": "#d1495b", "landmark": "#2a9d5c", "fused": "#7b5ea7"}
_FALLBACK_COLORS = ["#7b5ea7", "#e07b00", "#008b8b", "#555555"]

SPEAKING_COLOR = "#22c55e"
SILENT_COLOR = "#9ca3af"


def engine_label(name: str) -> str:
    return ENGINE_LABELS.get(name, name)


def engine_color(name: str, index: int = 0) -> str:
    return ENGINE_COLORS.get(name, _FALLBACK_COLORS[index % len(_FALLBACK_COLORS)])


def describe_offset_short(offset_frames: int | None, fps: float = TIMELINE_FPS) -> str:
    """"audio 120 ms early" / "audio 80 ms late" / "in sync" (positive offset = audio early)."""
    if offset_frames is None:
        return "no reading"
    ms = round(abs(offset_frames) * 1000 / fps)
    if offset_frames == 0:
        return "in sync"
    return f"audio {ms} ms {'early' if offset_frames > 0 else 'late'}"


# -- per-frame confidence ---------------------------------------------------------------------------------


def confidence_figure(reports: Mapping[str, dict], *, width: float = 9.0, height: float = 3.4) -> Figure:
    """Per-frame sync confidence of every engine against time, all on one axis.

    The main face track of each engine is drawn solid; other tracks dashed and fainter.
    """
    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    for index, (name, report) in enumerate(reports.items()):
        fps = report.get("fps") or TIMELINE_FPS
        color = engine_color(name, index)
        several = len(report["tracks"]) > 1
        for track in report["tracks"]:
            values = _as_float_array(track["per_frame_confidence"])
            if values.size == 0:
                continue
            times = (track["start_frame"] + np.arange(values.size)) / fps
            main = track["track_id"] == report.get("main_track_id")
            label = engine_label(name) + (f" · face {track['track_id']}" if several else "")
            ax.plot(times, values, color=color, lw=1.8 if main else 1.1, ls="-" if main else "--",
                    alpha=1.0 if main else 0.6, label=label)
    ax.axhline(0.0, color="#444444", lw=0.8, alpha=0.6)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("confidence")
    ax.set_title("Per-frame sync confidence (higher = lips match the sound)", fontsize=11)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper right", fontsize=9, framealpha=0.85)
    else:
        _no_data(ax)
    return fig


# -- offset curves ----------------------------------------------------------------------------------------


def offset_curves_figure(reports: Mapping[str, dict], *, width: float = 9.0, height: float = 3.4) -> Figure:
    """One panel per engine: mean distance against shift, with the offset the engine chose marked.

    Engines measure distance on different scales, so each gets its own y axis.
    """
    names = list(reports)
    n = max(1, len(names))
    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    axes = fig.subplots(1, n, squeeze=False)[0]
    if not names:
        _no_data(axes[0])
        return fig
    for index, (ax, name) in enumerate(zip(axes, names)):
        report = reports[name]
        color = engine_color(name, index)
        drawn = False
        for track in report["tracks"]:
            curve = track.get("offset_curve") or {}
            offsets = np.asarray(curve.get("offsets", []), dtype=float)
            dist = _as_float_array(curve.get("mean_dist", []))
            if offsets.size == 0 or offsets.size != dist.size:
                continue
            drawn = True
            main = track["track_id"] == report.get("main_track_id")
            ax.plot(offsets, dist, color=color, lw=1.8 if main else 1.0, alpha=1.0 if main else 0.45,
                    marker="." if main else None, ms=4)
            if main:
                _mark_chosen(ax, offsets, dist, track["offset_frames"], color)
        ax.axvline(0, color="#444444", lw=0.8, alpha=0.5)
        chosen = report.get("offset_frames")
        title = engine_label(name)
        if chosen is not None:
            title += f": {chosen:+d} frames\n{describe_offset_short(chosen, report.get('fps') or TIMELINE_FPS)}"
        ax.set_title(title, fontsize=10, color=color)
        ax.set_xlabel("offset (frames, + = audio early)")
        if index == 0:
            ax.set_ylabel("mean distance (lower = better)")
        ax.grid(True, alpha=0.3)
        if not drawn:
            _no_data(ax)
    return fig


def _mark_chosen(ax, offsets: np.ndarray, dist: np.ndarray, chosen: int, color: str) -> None:
    hits = np.flatnonzero(offsets == chosen)
    if hits.size == 0 or not math.isfinite(dist[hits[0]]):
        return
    ax.axvline(chosen, color=color, lw=1.0, ls=":", alpha=0.9)
    ax.plot([chosen], [dist[hits[0]]], marker="o", ms=9, mfc="none", mec="#111111", mew=1.6, zorder=5)


# -- who speaks when --------------------------------------------------------------------------------------


def speaking_engine(reports: Mapping[str, dict]) -> str | None:
    """The engine whose "who speaks when" the front ends show: the first (in the order given) whose
    main reading is reliable, else the first. An unreliable engine marks nobody speaking, or guesses."""
    names = list(reports)
    reliable = [name for name in names if reports[name].get("reliable")]
    return (reliable or names or [None])[0]


def speaking_figure(report: dict, *, width: float = 9.0, row_height: float = 0.42) -> Figure:
    """Who speaks when: a row per face track, its span in grey, where it is the voice heard in green.

    ``report`` is one engine's ``to_dict()``; the rows follow its ``speaking_segments``.
    """
    tracks = sorted(report.get("tracks", []), key=lambda t: t["track_id"])
    fps = report.get("fps") or TIMELINE_FPS
    fig = Figure(figsize=(width, 1.1 + row_height * max(1, len(tracks))), dpi=110, layout="constrained")
    ax = fig.add_subplot()
    for row, track in enumerate(tracks):
        start = track["start_frame"] / fps
        ax.broken_barh([(start, (track["end_frame"] + 1) / fps - start)], (row - 0.35, 0.7), color=SILENT_COLOR,
                       alpha=0.35)
        spans = [(seg["start_s"], seg["end_s"] - seg["start_s"]) for seg in track.get("speaking_segments", [])]
        ax.broken_barh(spans, (row - 0.35, 0.7), color=SPEAKING_COLOR)
    ax.set_yticks(range(len(tracks)), [f"face {t['track_id']}" for t in tracks])
    ax.set_ylim(-0.6, max(1, len(tracks)) - 0.4)
    ax.invert_yaxis()
    ax.set_xlim(0, max(report.get("duration_s") or 0.0, 1.0 / fps))
    ax.set_xlabel("time (s)")
    ax.grid(True, axis="x", alpha=0.3)
    if not tracks:
        _no_data(ax, "no face tracks")
    ax.set_title(f"Who speaks when (per {engine_label(report.get('engine', ''))}): green = this face is the "
                 "voice heard, grey = face on screen", fontsize=10)
    return fig


# -- annotated frames -------------------------------------------------------------------------------------


def track_states(report: dict, frame: int) -> list[dict]:
    """Faces visible in ``frame``: ``[{"track_id", "box": [x1, y1, x2, y2], "speaking": bool}]``.

    Needs the per-frame ``boxes`` of ``to_dict(full=True)``; speaking follows the report's segments.
    """
    states = []
    for track in report.get("tracks", []):
        boxes = track.get("boxes")
        if not boxes or not track["start_frame"] <= frame <= track["end_frame"]:
            continue
        k = frame - track["start_frame"]
        if k >= len(boxes):
            continue
        speaking = any(s["start_frame"] <= frame <= s["end_frame"] for s in track.get("speaking_segments", []))
        states.append({"track_id": track["track_id"], "box": boxes[k], "speaking": speaking})
    return states


def pick_preview_frames(report: dict, count: int = 6) -> list[int]:
    """``count`` frames spread evenly over the span where faces were tracked (or the whole video)."""
    tracks = report.get("tracks", [])
    fps = report.get("fps") or TIMELINE_FPS
    if tracks:
        first = min(t["start_frame"] for t in tracks)
        last = max(t["end_frame"] for t in tracks)
    else:
        first, last = 0, max(0, int(report.get("duration_s", 0) * fps) - 1)
    count = max(1, min(count, last - first + 1))
    # centres of ``count`` equal slices, so the first and last frames (often fades) are avoided
    return sorted({int(first + (i + 0.5) * (last - first + 1) / count) for i in range(count)})


def preview_figure(video: str | Path, report: dict, *, count: int = 6, columns: int | None = None) -> Figure:
    """A grid of frames from ``video`` with each tracked face boxed; speaking faces in green.

    ``report`` is one engine's ``to_dict(full=True)``: its speaking segments decide the colours.
    """
    frames, scale = _grab_frames(video, pick_preview_frames(report, count))
    n = max(1, len(frames))
    if frames:
        h, w = next(iter(frames.values())).shape[:2]
    else:
        h, w = 9, 16
    columns = columns or (n if w <= h and n <= 6 else min(3, n))
    rows = math.ceil(n / columns)
    panel = min(2.4 if w <= h else 3.2, 9.0 / columns)  # about as wide as the other figures
    fig = Figure(figsize=(panel * columns, panel * rows * h / w + 0.5 * rows), dpi=110, layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    fps = report.get("fps") or TIMELINE_FPS
    for ax in axes:
        ax.set_axis_off()
    for ax, (frame_index, image) in zip(axes, frames.items()):
        ax.imshow(image[:, :, ::-1])  # BGR → RGB
        line = max(1.5, 2.5 * max(h, w) / 720)
        for state in track_states(report, frame_index):
            x1, y1, x2, y2 = (v * scale for v in state["box"])
            color = SPEAKING_COLOR if state["speaking"] else SILENT_COLOR
            ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec=color, lw=line))
            tag = f"face {state['track_id']} · {'speaking' if state['speaking'] else 'not speaking'}"
            # the tag sits above the box, or inside its top edge when the face touches the frame's top
            above = y1 > 0.12 * image.shape[0]
            ax.text(x1, y1 - 3 if above else y1 + 3, tag, color="white", fontsize=8,
                    va="bottom" if above else "top", clip_on=True,
                    bbox={"boxstyle": "square,pad=0.2", "fc": color, "ec": "none", "alpha": 0.9})
        ax.set_title(f"{frame_index / fps:.1f} s", fontsize=9.5)
    if not frames:
        _no_data(axes[0], "no frames could be read")
    fig.suptitle(f"Tracked faces; green = speaking (per {engine_label(report.get('engine', ''))})", fontsize=10)
    return fig


def _grab_frames(video: str | Path, wanted: list[int], max_side: int = 640) -> tuple[dict[int, np.ndarray], float]:
    """The ``wanted`` timeline frames, downscaled to ``max_side``, and the scale applied to them."""
    from .media import iter_frames, probe

    if not wanted:
        return {}, 1.0
    info = probe(video)
    wanted_set = set(wanted)
    frames = {}
    for index, image in iter_frames(video, start_frame=min(wanted), end_frame=max(wanted) + 1, max_side=max_side):
        if index in wanted_set:
            frames[index] = np.ascontiguousarray(image)
    scale = next(iter(frames.values())).shape[1] / info.width if frames else 1.0
    return frames, scale


def write_annotated_video(video: str | Path, report: dict, out_path: str | Path, *, max_side: int = 480,
                          with_audio: bool = True) -> Path:
    """An H.264/AAC mp4 of ``video`` on the 25 fps timeline with each face boxed and labelled.

    Frames are scaled down so the longer side is at most ``max_side`` (the result is a preview, kept
    small for the browser). A face in one of its speaking segments gets a green box and a dot.
    """
    import av
    import cv2

    from .media import encode_audio, iter_frames, load_audio, probe

    out_path = Path(out_path)
    fps = int(report.get("fps") or TIMELINE_FPS)
    info = probe(video)
    with av.open(str(out_path), mode="w") as container:
        vstream = None
        astream = None
        for index, image in iter_frames(video, max_side=max_side):
            if vstream is None:
                h, w = image.shape[:2]
                scale = w / info.width
                vstream = container.add_stream("libx264", rate=fps)
                vstream.width, vstream.height = _even(w), _even(h)  # yuv420p needs even sides
                vstream.pix_fmt = "yuv420p"
                vstream.options = {"preset": "veryfast", "crf": "26"}
                if with_audio and info.has_audio:
                    astream = container.add_stream("aac", rate=AUDIO_SAMPLE_RATE)
                    astream.layout = "mono"
            frame = np.array(image[: vstream.height, : vstream.width])  # a writable copy to draw on
            if frame.shape[:2] != (vstream.height, vstream.width):
                frame = cv2.resize(image, (vstream.width, vstream.height), interpolation=cv2.INTER_AREA)
            _draw_faces(frame, track_states(report, index), scale, index / fps)
            vframe = av.VideoFrame.from_ndarray(frame, format="bgr24")
            vframe.pts = index
            vframe.time_base = Fraction(1, fps)
            for packet in vstream.encode(vframe):
                container.mux(packet)
        if vstream is None:
            raise ValueError(f"no frames could be read from {video}")
        for packet in vstream.encode():
            container.mux(packet)
        if astream is not None:
            encode_audio(container, astream, load_audio(video))
    return out_path


def _draw_faces(frame: np.ndarray, states: list[dict], scale: float, seconds: float) -> None:
    import cv2

    thickness = max(1, round(max(frame.shape[:2]) / 240))
    for state in states:
        x1, y1, x2, y2 = (int(round(v * scale)) for v in state["box"])
        color = (94, 197, 34) if state["speaking"] else (175, 163, 156)  # BGR of SPEAKING/SILENT_COLOR
        cv2.rectangle(frame, (x1, y1), (x2, y2), color, thickness)
        label = f"face {state['track_id']}" + (" speaking" if state["speaking"] else "")
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
        top = max(0, y1 - th - 6)
        cv2.rectangle(frame, (x1, top), (x1 + tw + 6, top + th + 6), color, -1)
        cv2.putText(frame, label, (x1 + 3, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1,
                    cv2.LINE_AA)
        if state["speaking"]:
            cv2.circle(frame, (x2 - 8, y1 + 8), 5, color, -1, cv2.LINE_AA)
    cv2.putText(frame, f"{seconds:5.2f} s", (6, frame.shape[0] - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                (255, 255, 255), 1, cv2.LINE_AA)


# -- output -----------------------------------------------------------------------------------------------


def figure_png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _as_float_array(values) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=float)


def _even(x: float) -> int:
    return max(2, int(x) // 2 * 2)


def _no_data(ax, text: str = "no data") -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="#777777")
