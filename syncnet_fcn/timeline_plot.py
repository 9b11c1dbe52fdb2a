"""The timeline's figure: offset and confidence per window over the whole recording, and who talks when."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator


def timeline_figure(timeline, *, width: float = 11.0) -> Figure:
    """Three stacked panels sharing the time axis: offset per window (jumps marked), confidence, speakers."""
    fig = Figure(figsize=(width, 6.0), layout="constrained")
    ax_offset, ax_conf, ax_who = fig.subplots(3, 1, sharex=True, height_ratios=[2, 1.4, 1.2])
    scale, unit = (3600.0, "h") if timeline.duration_s > 3 * 3600 else (60.0, "min") if timeline.duration_s > 180 else (1.0, "s")

    windows = [w for w in timeline.windows if w["offset_frames"] is not None]
    mids = np.array([(w["start"] + w["end"]) / 2 / scale for w in windows])
    offsets = np.array([w["offset_frames"] for w in windows], float)
    conf = np.array([np.nan if w["confidence"] is None else w["confidence"] for w in windows], float)
    reliable = np.array([bool(w["reliable"]) for w in windows])
    if len(windows):
        ax_offset.plot(mids[reliable], offsets[reliable], "o", color="tab:blue", ms=4, label="reliable")
        ax_offset.plot(mids[~reliable], offsets[~reliable], "o", mfc="none", color="tab:gray", ms=4, label="not reliable")
        ax_conf.plot(mids, conf, "-", color="tab:green", lw=1)
    for jump in timeline.jumps:
        for ax in (ax_offset, ax_conf):
            ax.axvline(jump["time_s"] / scale, color="tab:red", lw=1, ls="--")
        ax_offset.annotate(f"{jump['from_frames']:+d} → {jump['to_frames']:+d}", (jump["time_s"] / scale, jump["to_frames"]),
                           color="tab:red", fontsize=8, xytext=(4, 4), textcoords="offset points")
    ax_offset.axhline(0, color="black", lw=0.5)
    ax_offset.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax_offset.set_ylabel("offset (frames)\n>0: audio early")
    ax_offset.legend(loc="upper right", fontsize=8)
    ax_conf.set_ylabel("confidence")

    speakers = [p["label"] for p in timeline.people if p["speaking_s"] > 0]
    rows = {label: k for k, label in enumerate(speakers)}
    colors = {"talk": "tab:blue", "sing": "tab:purple"}
    for seg in timeline.voice_segments():
        if seg["speaker"] in rows:
            ax_who.broken_barh([(seg["start"] / scale, (seg["end"] - seg["start"]) / scale)], (rows[seg["speaker"]] - 0.4, 0.8),
                               color=colors.get(seg["type"], "tab:gray"))
    ax_who.set_yticks(range(len(speakers)), speakers)
    ax_who.set_ylim(-0.6, max(len(speakers), 1) - 0.4)
    ax_who.set_xlabel(f"time ({unit})")
    ax_who.set_xlim(0, max(timeline.duration_s, 1e-3) / scale)
    fig.suptitle(f"{timeline.video}: sync and speakers over time", fontsize=10)
    return fig


def write_timeline_plot(timeline, path: str | Path) -> Path:
    from .writers import write_bytes_atomic

    fig = timeline_figure(timeline)
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return write_bytes_atomic(Path(path), buffer.getvalue())


__all__ = ["timeline_figure", "write_timeline_plot"]
