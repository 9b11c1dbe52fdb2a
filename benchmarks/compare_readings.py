"""Two runs of ``benchmarks/accuracy.py`` (e.g. torch against ONNX int8) compared copy by copy.

On the copies both runs read (clip, shift): the share read at the same offset, each run's accuracy
(±1 frame of the truth, REFERENCE §5) on those copies, and how far the confidences (a difference of
two distances) moved. A run cut short compares on what it finished: give its progress log (stderr,
lines ``[i/n] clip -12: 15 -7: 11 …``) instead of its JSON; offsets only, then.

    python benchmarks/accuracy.py --engine fcn --weights W --runtime torch --json torch.json
    python benchmarks/accuracy.py --engine fcn --weights W --runtime onnx --int8 --json int8.json
    python benchmarks/compare_readings.py torch.json int8.json
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np


def readings(path: Path) -> tuple[dict, dict]:
    text = path.read_text()
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return _from_log(text), {"runtime": f"log of {path.name}"}
    return {(r["clip"], r["shift"]): r for r in data["results"]}, data


def _from_log(text: str) -> dict:
    """Readings of accuracy.py's progress lines: ``[3/83] clip.mp4  -12: 11 -7:  6✗ +0: -1 …``."""
    found = {}
    for line in text.splitlines():
        match = re.match(r"\[\d+/\d+\] (\S+)\s+(.*)$", line)
        if not match or ":" not in match.group(2):
            continue
        for shift, offset in re.findall(r"([+-]\d+):\s*(-?\d+|-)", match.group(2)):
            found[(match.group(1), int(shift))] = {
                "offset": None if offset == "-" else int(offset), "correct": None, "confidence": None}
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reference", type=Path)
    parser.add_argument("other", type=Path)
    args = parser.parse_args()
    ref, ref_data = readings(args.reference)
    other, other_data = readings(args.other)
    both = sorted(set(ref) & set(other))
    if not both:
        raise SystemExit("the two runs share no copy")
    same = [k for k in both if ref[k]["offset"] == other[k]["offset"]]
    judged = [k for k in both if ref[k]["correct"] is not None and other[k]["correct"] is not None]
    conf = np.array([abs(ref[k]["confidence"] - other[k]["confidence"]) for k in both
                     if ref[k]["confidence"] is not None and other[k]["confidence"] is not None])
    names = [f"{d.get('runtime', '?')}" for d in (ref_data, other_data)]
    print(f"{args.reference.name} ({names[0]}) vs {args.other.name} ({names[1]}): "
          f"{len(both)} copies of {len({k[0] for k in both})} clips read by both")
    print(f"same offset: {len(same)}/{len(both)} = {100 * len(same) / len(both):.1f} %")
    for label, run in ((names[0], ref), (names[1], other)):
        correct = sum(bool(run[k]["correct"]) for k in judged)
        print(f"accuracy ({label}): {correct}/{len(judged)} = {100 * correct / max(len(judged), 1):.1f} %")
    if len(conf):
        print(f"|confidence change|: mean {conf.mean():.3f}, 99th percentile {np.percentile(conf, 99):.3f}, "
              f"max {conf.max():.3f}")
    for k in both:
        if k not in same:
            print(f"  differs: {k[0]} shift {k[1]:+d}: {ref[k]['offset']} vs {other[k]['offset']}")


if __name__ == "__main__":
    main()
