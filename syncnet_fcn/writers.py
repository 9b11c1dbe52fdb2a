"""Output writers: one class per format, looked up by name with :func:`get_writer`.

A writer turns a result object (a timeline, a batch table, monitor events, ...) into one file format.
Results are plain data classes that know nothing of formats; front ends pick a writer by the format
name the user gave (``--format srt``) and never format results themselves.

    writer = get_writer("srt")
    writer.write(result, Path("talk.srt"))      # atomically: a crash never leaves half a file
    text = writer.render(result)                # the same, as a string

Add a format by subclassing :class:`Writer` with ``name`` and ``extension`` and ``render``; the
``register`` decorator makes it known to :func:`get_writer`.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import InvalidArgumentError

_WRITERS: dict[str, type["Writer"]] = {}


class Writer:
    """One output format. Subclasses set ``name``/``extension`` and implement :meth:`render`."""

    name: str = ""
    extension: str = ""

    def render(self, result) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def write(self, result, path: Path) -> Path:
        path = Path(path)
        write_text_atomic(path, self.render(result))
        return path


def register(cls: type[Writer]) -> type[Writer]:
    _WRITERS[cls.name] = cls
    return cls


def get_writer(name: str) -> Writer:
    try:
        return _WRITERS[name.strip().lower()]()
    except KeyError:
        known = ", ".join(sorted(_WRITERS)) or "none"
        raise InvalidArgumentError(f"unknown output format {name!r} (known: {known})") from None


def writer_names() -> list[str]:
    return sorted(_WRITERS)


def write_text_atomic(path: Path, text: str) -> None:
    """Write through a temporary file in the same folder and rename it into place."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    """Write through a temporary file in the same folder and rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# -- batch evaluation tables (syncnet_fcn.batch.BatchResult) -------------------------------------------


def _number(value, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _interval(stats: dict) -> str:
    return "" if not stats.get("ci95") else f"{stats['ci95'][0]:.3f}–{stats['ci95'][1]:.3f}"


@register
class EvalMarkdownWriter(Writer):
    """The comparison table (one row per group, then all videos) and every video's row, in Markdown."""

    name = "eval-md"
    extension = ".md"

    def render(self, batch) -> str:
        lines = [f"engine {batch.engine} · weights sha256 {batch.weights_sha256[:12]} · "
                 f"±{batch.options.max_offset} frames", "",
                 "| group | videos | scored | LSE-C mean | median | std | 95 % CI | LSE-D mean | median | std "
                 "| 95 % CI | no face | no reading | other failures |",
                 "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---|---:|---:|---:|"]
        groups = dict(batch.groups)
        if len(groups) > 1:
            groups["**all**"] = batch.overall
        for name, agg in groups.items():
            c, d = agg["lse_c"], agg["lse_d"]
            others = agg["no_audio"] + agg["unreadable"] + agg["failed"]
            lines.append(
                f"| {name} | {agg['videos']} | {agg['scored']} | {_number(c['mean'])} | {_number(c['median'])} | "
                f"{_number(c['std'])} | {_interval(c)} | {_number(d['mean'])} | {_number(d['median'])} | "
                f"{_number(d['std'])} | {_interval(d)} | {agg['no_face']} | {agg['no_reading']} | {others} |")
        lines += ["", "| video | group | status | LSE-C | LSE-D | offset | confidence | reliable | frames | tracks "
                  "| reason |", "|---|---|---|---:|---:|---:|---:|---|---:|---:|---|"]
        for row in batch.videos:
            lines.append(
                f"| {row.name} | {row.group} | {row.status} | {_number(row.lse_c)} | {_number(row.lse_d)} | "
                f"{'' if row.offset_frames is None else f'{row.offset_frames:+d}'} | {_number(row.confidence)} | "
                f"{'yes' if row.reliable else 'no'} | {row.frames} | {len(row.tracks)} | "
                f"{(row.reason or '').replace('|', '/')} |")
        return "\n".join(lines) + "\n"


@register
class EvalCsvWriter(Writer):
    """One line per video (``track`` empty) followed by one per face track of it."""

    name = "eval-csv"
    extension = ".csv"
    COLUMNS = ("video", "group", "track", "status", "lse_c", "lse_d", "offset_frames", "confidence", "reliable",
               "frames", "start_frame", "end_frame", "reason", "sha256", "engine")

    def render(self, batch) -> str:
        import csv
        import io

        buffer = io.StringIO()
        out = csv.DictWriter(buffer, fieldnames=self.COLUMNS, lineterminator="\n")
        out.writeheader()
        for row in batch.videos:
            out.writerow({"video": row.video, "group": row.group, "track": "", "status": row.status,
                          "lse_c": _number(row.lse_c, 4), "lse_d": _number(row.lse_d, 4),
                          "offset_frames": "" if row.offset_frames is None else row.offset_frames,
                          "confidence": _number(row.confidence, 4), "reliable": int(row.reliable),
                          "frames": row.frames, "reason": row.reason or "", "sha256": row.sha256 or "",
                          "engine": row.engine or batch.engine})
            for track in row.tracks:
                out.writerow({"video": row.video, "group": row.group, "track": track["track_id"],
                              "status": "ok" if track["lse_d"] is not None else "no_reading",
                              "lse_c": _number(track["lse_c"], 4), "lse_d": _number(track["lse_d"], 4),
                              "offset_frames": track["offset_frames"], "confidence": _number(track["lse_c"], 4),
                              "reliable": int(track["reliable"]), "frames": track["frames"],
                              "start_frame": track["start_frame"], "end_frame": track["end_frame"],
                              "reason": track["note"] or "", "sha256": row.sha256 or "",
                              "engine": row.engine or batch.engine})
        return buffer.getvalue()


@register
class EvalGroupsCsvWriter(Writer):
    """The comparison table: one line per group, then ``all``."""

    name = "eval-groups-csv"
    extension = ".csv"
    COLUMNS = ("group", "videos", "scored", "lse_c_mean", "lse_c_median", "lse_c_std", "lse_c_ci95_low",
               "lse_c_ci95_high", "lse_d_mean", "lse_d_median", "lse_d_std", "lse_d_ci95_low", "lse_d_ci95_high",
               "no_face", "no_reading", "no_audio", "unreadable", "failed", "reliable")

    def render(self, batch) -> str:
        import csv
        import io

        buffer = io.StringIO()
        out = csv.DictWriter(buffer, fieldnames=self.COLUMNS, lineterminator="\n")
        out.writeheader()
        for name, agg in {**batch.groups, "all": batch.overall}.items():
            row = {"group": name, **{k: agg[k] for k in ("videos", "scored", "no_face", "no_reading", "no_audio",
                                                         "unreadable", "failed", "reliable")}}
            for measure in ("lse_c", "lse_d"):
                stats = agg[measure]
                ci = stats["ci95"] or (None, None)
                for key, value in (("mean", stats["mean"]), ("median", stats["median"]), ("std", stats["std"]),
                                   ("ci95_low", ci[0]), ("ci95_high", ci[1])):
                    row[f"{measure}_{key}"] = _number(value, 4)
            out.writerow(row)
        return buffer.getvalue()


@register
class EvalJsonWriter(Writer):
    """Everything: options, aggregate per group and overall, every video with its tracks."""

    name = "eval-json"
    extension = ".json"

    def render(self, batch) -> str:
        import json

        return json.dumps(batch.to_dict(), indent=2) + "\n"



# -- timeline formats (results: syncnet_fcn.timeline_result.Timeline) -------------------------------------


def _segment_label(segment: dict) -> str:
    """``"A · talk"``; a stretch without a voice is just its kind (``"music"``)."""
    return f"{segment['speaker']} · {segment['type']}" if segment["speaker"] else segment["type"]


def _clock_text(seconds: float, decimal: str) -> str:
    millis = int(round(float(seconds) * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{millis:03d}"


@register
class TimelineJSON(Writer):
    """Everything: people, tracks, segments, per-window offsets, jumps and the settings."""

    name, extension = "json", ".json"

    def render(self, result) -> str:
        import json

        return json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n"


@register
class SRT(Writer):
    """SubRip subtitles: one cue per segment, ``A · talk``."""

    name, extension = "srt", ".srt"

    def render(self, result) -> str:
        cues = []
        for number, seg in enumerate(result.segments, 1):
            cues.append(f"{number}\n{_clock_text(seg['start'], ',')} --> {_clock_text(seg['end'], ',')}\n"
                        f"{_segment_label(seg)}\n")
        return "\n".join(cues)


@register
class VTT(Writer):
    """WebVTT subtitles, as SRT with a header and dotted milliseconds."""

    name, extension = "vtt", ".vtt"

    def render(self, result) -> str:
        cues = [f"{_clock_text(seg['start'], '.')} --> {_clock_text(seg['end'], '.')}\n{_segment_label(seg)}\n"
                for seg in result.segments]
        return "WEBVTT\n\n" + "\n".join(cues)


@register
class RTTM(Writer):
    """NIST RTTM speaker turns (talk and sing segments with a speaker), as diarisation scorers read them."""

    name, extension = "rttm", ".rttm"

    def render(self, result) -> str:
        from pathlib import PurePath

        file_id = PurePath(result.video).stem.replace(" ", "_") or "recording"
        lines = []
        for seg in result.voice_segments():
            speaker = str(seg["speaker"]).replace(" ", "_")
            lines.append(f"SPEAKER {file_id} 1 {seg['start']:.3f} {seg['end'] - seg['start']:.3f} <NA> <NA> "
                         f"{speaker} <NA> <NA>")
        return "\n".join(lines) + ("\n" if lines else "")


@register
class CSV(Writer):
    """One row per segment: speaker, start, end, type, confidence, offset_frames, source."""

    name, extension = "csv", ".csv"
    columns = ("speaker", "start", "end", "type", "confidence", "offset_frames", "source")

    def render(self, result) -> str:
        import csv
        import io

        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(self.columns)
        for seg in result.segments:
            writer.writerow(["" if seg.get(c) is None else seg.get(c) for c in self.columns])
        return out.getvalue()


def writer_for_path(path: Path, default: str | None = None, family: str = "") -> Writer:
    """The writer a file name asks for by its extension, else ``default``.

    Writers of one kind of result share a name prefix (``eval-csv``); ``family`` picks among them, and
    the plain names (``json``, ``srt``, ``csv``, ...) are the timeline's.
    """
    suffix = Path(path).suffix.lower()
    for name, cls in _WRITERS.items():
        in_family = name.startswith(f"{family}-") if family else "-" not in name
        if in_family and cls.extension == suffix:
            return cls()
    if default is None:
        raise InvalidArgumentError(f"cannot tell the format of {Path(path).name} from its extension: "
                                   f"add --format ({', '.join(writer_names())})")
    return get_writer(default)
