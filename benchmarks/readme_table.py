"""README.md's accuracy table, written from a ``benchmarks/accuracy.py --json`` summary (never by hand).

    python benchmarks/accuracy.py --engine fused --json fused.json     # one run: fused and each member
    python benchmarks/accuracy.py --readme fused.json                  # rewrites the table in README.md

The table goes between the two ``accuracy-table`` markers; everything else in the README is kept.
"""

from __future__ import annotations

import json
from pathlib import Path

BEGIN = "<!-- accuracy-table:begin (written by benchmarks/accuracy.py --readme; do not edit by hand) -->"
END = "<!-- accuracy-table:end -->"


def _pct(rate: dict | None) -> str:
    if not rate or rate.get("accuracy") is None:
        return "–"
    return f"{100 * rate['accuracy']:.1f} %"


def table_rows(payload: dict) -> list[str]:
    """Markdown lines: one row per engine of the run (the fused engine and each member alone), then
    clip-level accuracy by the length of the track read."""
    views = payload.get("views") or {payload["engine"]: {"summary": payload["summary"]}}
    lines = [
        "| engine | real clips | without the 3 contested | K=5 | K=15 | K=50 | generated | flagged reliable "
        "| right if reliable | in-sync corpora 0 ± 1 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, view in views.items():
        real, gen = view["summary"]["real"], view["summary"]["generated"]
        o = real["overall"]
        lines.append(
            f"| `{name}` | {_pct(o['clip_level'])} | {_pct(real.get('without_contested', {}).get('clip_level'))} "
            f"| {_pct(o.get('context_5'))} | {_pct(o.get('context_15'))} | {_pct(o.get('context_50'))} "
            f"| {_pct(gen['overall']['clip_level'])} | {_pct(o['flagged_reliable'])} "
            f"| {_pct(o['clip_level_if_reliable'])} | {_pct(o['in_sync_zero'])} |"
        )
    buckets = list(next(iter(views.values()))["summary"]["real"].get("by_length", {}))
    if buckets:
        lines += ["", "| real clips by track length | " + " | ".join(buckets) + " |",
                  "|---|" + "---|" * len(buckets)]
        for name, view in views.items():
            by_length = view["summary"]["real"].get("by_length", {})
            cells = [f"{_pct(by_length[b]['clip_level'])} ({by_length[b]['copies']})" if b in by_length else "–"
                     for b in buckets]
            lines.append(f"| `{name}` (copies) | " + " | ".join(cells) + " |")
    clips = next(iter(views.values()))["summary"]["real"]["overall"]["clips"]
    generated = next(iter(views.values()))["summary"]["generated"]["overall"]["clips"]
    lines += ["", f"{clips} real and {generated} generated clips, each with its audio shifted by "
              f"{', '.join(f'{s:+d}' for s in payload['shifts'])} frames; a reading within ±1 frame is right."]
    return lines


def write_readme_table(summary_json: Path, readme: Path) -> None:
    payload = json.loads(Path(summary_json).read_text())
    text = readme.read_text()
    block = "\n".join([BEGIN, *table_rows(payload), END])
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _old, tail = rest.split(END, 1)
        text = head + block + tail
    else:
        raise SystemExit(f"{readme.name} has no accuracy-table markers: add {BEGIN!r} and {END!r} where the table goes")
    readme.write_text(text)
    print(f"wrote the accuracy table of {summary_json} into {readme}")
