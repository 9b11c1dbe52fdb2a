"""Batch evaluation (`syncnet-fcn eval`) on the clips of ../shared/clips grouped by source.

Real clips are grouped by corpus (grid, lrs2, lrw, ...), generated ones by generator (vexpress,
sadtalker, ...), each group a folder of links, so the run is exactly `eval --group-by folder`. The same
videos are scored

1. by one local worker with an empty cache (the first run), then again with everything cached;
2. by two local worker processes (no cache);
3. by the Ray backend on a local Ray with two CPUs (no cache; skipped without Ray),

and the script prints the comparison table, the wall times, the throughput of two workers against
one, the cached re-run against the first run, and whether every per-video number (status, LSE-C,
LSE-D, offset, confidence, reliable, frames, tracks) is identical across the backends.

    python benchmarks/eval_batch.py --per-group 2 --max-seconds 8 --json eval_batch.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from syncnet_fcn.batch import EvalOptions, ResultCache, collect_videos, run_batch  # noqa: E402
from syncnet_fcn.native_logs import filter_native_stderr  # noqa: E402
from syncnet_fcn.evaluation import corpus_of  # noqa: E402
from syncnet_fcn.writers import get_writer  # noqa: E402

DEFAULT_CLIPS = REPO.parent / "shared" / "clips"
NUMBERS = ("status", "lse_c", "lse_d", "offset_frames", "confidence", "reliable", "frames", "tracks")


def source_of(name: str) -> str:
    """The generator for generated clips (``gen_<generator>_...``), else the corpus."""
    if name.startswith("gen_"):
        return name.split("_")[1]
    return corpus_of(name)


def pick_clips(clips: Path, per_group: int | None, max_seconds: float | None) -> dict[str, list[Path]]:
    manifest = {e["file"]: e for e in json.loads((clips / "manifest.json").read_text())}
    groups: dict[str, list[Path]] = {}
    for name in sorted(manifest):
        entry = manifest[name]
        if max_seconds is not None and entry.get("duration_s", 0) > max_seconds:
            continue
        if not (clips / name).is_file():
            continue
        members = groups.setdefault(source_of(name), [])
        if per_group is None or len(members) < per_group:
            members.append(clips / name)
    return groups


def timed(label: str, **kwargs):
    started = time.perf_counter()
    batch = run_batch(**kwargs)
    wall = time.perf_counter() - started
    print(f"{label:28s} {wall:8.1f} s  ({batch.computed} scored, {len(batch.videos) - batch.computed} cached)",
          flush=True)
    return batch, wall


def numbers(batch) -> dict[str, tuple]:
    return {Path(row.video).name: tuple(json.dumps(getattr(row, k), sort_keys=True) for k in NUMBERS)
            for row in batch.videos}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=Path, default=DEFAULT_CLIPS)
    parser.add_argument("--per-group", type=int, help="at most this many clips per source (default: all)")
    parser.add_argument("--max-seconds", type=float, help="only clips at most this long")
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--weights")
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--json", type=Path, help="write the figures and every run's rows here")
    args = parser.parse_args()
    filter_native_stderr()  # mediapipe's routine C++ log lines

    groups = pick_clips(args.clips, args.per_group, args.max_seconds)
    work = Path(tempfile.mkdtemp(prefix="eval_batch_"))
    for group, members in groups.items():
        (work / "videos" / group).mkdir(parents=True)
        for clip in members:
            (work / "videos" / group / clip.name).symlink_to(clip.resolve())
    jobs = collect_videos([work / "videos" / g for g in groups], group_by="folder")
    manifest = {e["file"]: e for e in json.loads((args.clips / "manifest.json").read_text())}
    seconds = sum(manifest[j.path.name].get("duration_s", 0) for j in jobs)
    print(f"{len(jobs)} videos ({seconds:.0f} s of footage) in {len(groups)} groups: {', '.join(groups)}")
    options = EvalOptions(engine=args.engine, weights=args.weights)
    cache = ResultCache(work / "cache")

    first, first_s = timed("1 worker, empty cache", jobs=jobs, options=options, cache=cache)
    cached, cached_s = timed("1 worker, all cached", jobs=jobs, options=options, cache=cache)
    two, two_s = timed("2 worker processes", jobs=jobs, options=options, workers=2)
    runs = {"local_1": first, "local_1_cached": cached, "local_2": two}
    ray_s = None
    if not args.no_ray:
        try:
            import ray  # noqa: F401

            ray_batch, ray_s = timed("Ray, local, 2 CPUs", jobs=jobs, options=options, backend="ray", workers=2)
            runs["ray_2"] = ray_batch
        except ImportError:
            print("Ray not installed: skipped (pip install '.[ray]')")

    print()
    print(get_writer("eval-md").render(first))
    reference = numbers(first)
    identical = {name: numbers(batch) == reference for name, batch in runs.items()}
    differing = {name: sorted(k for k, v in numbers(batch).items() if v != reference.get(k))
                 for name, batch in runs.items() if not identical[name]}
    figures = {
        "videos": len(jobs), "footage_s": round(seconds, 1), "groups": {g: len(m) for g, m in groups.items()},
        "wall_s": {"local_1": round(first_s, 2), "local_1_cached": round(cached_s, 2), "local_2": round(two_s, 2),
                   "ray_2": None if ray_s is None else round(ray_s, 2)},
        "throughput_2_workers_vs_1": round(first_s / two_s, 3),
        "throughput_ray_vs_1": None if ray_s is None else round(first_s / ray_s, 3),
        "cached_rerun_fraction_of_first": round(cached_s / first_s, 4),
        "per_video_numbers_identical": identical, "differing_videos": differing,
        "not_scored": {row.video.rsplit('/', 1)[-1]: f"{row.status}: {row.reason}" for row in first.failed},
    }
    print(json.dumps(figures, indent=2))
    if args.json:
        figures["runs"] = {name: batch.to_dict() for name, batch in runs.items()}
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
