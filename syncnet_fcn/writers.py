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


def writer_for_path(path: Path, default: str | None = None) -> Writer:
    """The writer a file name asks for by its extension, else ``default``."""
    suffix = Path(path).suffix.lower()
    for cls in _WRITERS.values():
        if cls.extension == suffix:
            return cls()
    if default is None:
        raise InvalidArgumentError(f"cannot tell the format of {Path(path).name} from its extension: "
                                   f"add --format ({', '.join(writer_names())})")
    return get_writer(default)
