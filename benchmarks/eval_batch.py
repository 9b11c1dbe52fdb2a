"""Batch evaluation (`syncnet-fcn eval`) on the clips of ../shared/clips grouped by source: throughput of
scoring in this process, in one worker process and in two, measured side by side.

Real clips are grouped by corpus (grid, lrs2, lrw, ...), generated ones by generator (vexpress,
sadtalker, ...), each group a folder of links, so the run is exactly `eval --group-by folder`. The same
videos are scored, with no cache, by

* ``in_process``: this process with all its threads (`--workers 0`);
* ``workers_1``: one worker process with all the cores (`--workers 1`);
* ``workers_1_one_core``: one worker process of one core (`--workers 1 --threads 1`);
* ``workers_2``: two worker processes of one core each (`--workers 2`, on two cores),

in ``--rounds`` rounds, the order rotated each round (a busy machine then slows each alike), every run
paying its own start (spawning, loading the models), as a command would. It prints each round's wall
times and the throughput ratios (per round and their median) — the figure of the goal is
``workers_2_vs_workers_1`` (both use the whole machine); ``workers_2_vs_workers_1_one_core`` is
what a second worker of the same size adds — with the CPU seconds each took (the process and its workers). Then a run
with an empty cache and its re-run with everything cached, Ray with two workers (skipped without Ray
or with ``--no-ray``), and whether every per-video number (status, LSE-C, LSE-D, offset, confidence,
reliable, frames, tracks) is identical across all runs.

    python benchmarks/eval_batch.py --max-seconds 8 --rounds 2 --json eval_batch.json
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from syncnet_fcn import batch as batch_module  # noqa: E402
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


#: the ways of scoring compared: name -> ``(workers, threads)`` of the local backend
CONFIGS = {"in_process": (0, None), "workers_1": (1, None), "workers_1_one_core": (1, 1), "workers_2": (2, None)}


def cpu_seconds() -> float:
    """CPU time of this process and of its finished worker processes so far."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(label: str, **kwargs):
    """One run, paying its own start: this process's loaded pipelines are dropped first (a worker
    process loads its own anyway)."""
    batch_module._PIPELINES.clear()
    cpu, started = cpu_seconds(), time.perf_counter()
    batch = run_batch(**kwargs)
    wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    print(f"{label:34s} {wall:8.1f} s wall {cpu:8.1f} s CPU  ({batch.computed} scored, "
          f"{len(batch.videos) - batch.computed} cached)", flush=True)
    return batch, wall, cpu


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
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the three runs, order rotated (default 2)")
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

    runs = {}
    walls: dict[str, list[float]] = {name: [] for name in CONFIGS}
    cpus: dict[str, list[float]] = {name: [] for name in CONFIGS}
    names = list(CONFIGS)
    for round_ in range(args.rounds):
        order = names[round_ % len(names):] + names[:round_ % len(names)]  # rotated: load hits each alike
        for name in order:
            workers, threads = CONFIGS[name]
            batch, wall, cpu = timed(f"round {round_ + 1}: {name}", jobs=jobs, options=options,
                                     workers=workers, threads=threads)
            runs.setdefault(name, batch)
            walls[name].append(wall)
            cpus[name].append(cpu)

    def ratios(a: str, b: str) -> list[float]:  # throughput of a over b, per round
        return [round(wb / wa, 3) for wa, wb in zip(walls[a], walls[b])]

    per_round = {"workers_2_vs_workers_1": ratios("workers_2", "workers_1"),
                 "workers_2_vs_workers_1_one_core": ratios("workers_2", "workers_1_one_core"),
                 "workers_2_vs_in_process": ratios("workers_2", "in_process"),
                 "workers_1_vs_in_process": ratios("workers_1", "in_process")}
    fastest = min(CONFIGS, key=lambda n: statistics.median(walls[n]))
    first, first_s, _ = timed("in process, empty cache", jobs=jobs, options=options, cache=cache, workers=0)
    cached, cached_s, _ = timed("in process, all cached", jobs=jobs, options=options, cache=cache, workers=0)
    runs.update({"in_process_cache_filled": first, "in_process_cached": cached})
    ray_s = None
    if not args.no_ray:
        try:
            import ray  # noqa: F401

            ray_batch, ray_s, _ = timed("Ray, local, 2 workers", jobs=jobs, options=options, backend="ray", workers=2)
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
        "rounds": args.rounds,
        "wall_s": {name: [round(w, 2) for w in ws] for name, ws in walls.items()},
        "cpu_s": {name: [round(c, 2) for c in cs] for name, cs in cpus.items()},
        "throughput_per_round": per_round,
        "throughput_median": {k: round(statistics.median(v), 3) for k, v in per_round.items()},
        "fastest": fastest,
        "throughput_ray_2_vs_workers_1": None if ray_s is None else round(statistics.median(walls["workers_1"]) / ray_s, 3),
        "cached_rerun_fraction_of_first": round(cached_s / first_s, 4),
        "per_video_numbers_identical": identical, "differing_videos": differing,
        "not_scored": {row.video.rsplit('/', 1)[-1]: f"{row.status}: {row.reason}" for row in first.failed},
    }
    print(json.dumps(figures, indent=2))
    print("throughput, median of the rounds: " + ", ".join(f"{k} {v:.2f}x" for k, v in figures["throughput_median"].items())
          + f"; fastest: {fastest}; cached re-run {100 * figures['cached_rerun_fraction_of_first']:.1f} % of the first")
    if args.json:
        figures["runs"] = {name: batch.to_dict() for name, batch in runs.items()}
        args.json.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
