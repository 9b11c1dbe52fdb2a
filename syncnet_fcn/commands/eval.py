"""``syncnet-fcn eval PATH...``: LSE-C / LSE-D of many videos, grouped, aggregated, cached.

Exit code 0 when every video was scored, 1 when some could not be (their rows say why), 2 on a usage
error.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .common import add_device_argument, add_engine_argument, add_quiet_argument, add_weights_argument

EXIT_SOME_FAILED = 1
FORMATS = ("md", "csv", "json")
#: what --format prints: the comparison table (Markdown also lists every video; JSON is everything)
PRINTED = {"md": "eval-md", "csv": "eval-groups-csv", "json": "eval-json"}


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("eval", help="LSE-C / LSE-D of many videos (files, folders, globs), per group")
    p.add_argument("paths", nargs="+", metavar="PATH", help="video files, folders (searched recursively), globs")
    p.add_argument("-o", "--out", help="write the results here; format from the suffix (.csv, .md, .json)")
    p.add_argument("--format", default="md", choices=FORMATS, help="what to print: the comparison table and every video (md), the comparison table (csv), "
                        "everything (json)")
    p.add_argument("--group-by", default="none", choices=["none", "folder"],
                   help="folder: one row per folder in the comparison table")
    add_engine_argument(p, choices=("auto", "syncnet", "fcn", "landmark"))
    add_weights_argument(p)
    p.add_argument("--max-offset", type=int, default=15, help="search range in frames (default 15)")
    p.add_argument("--min-track-frames", type=int, default=25)
    p.add_argument("--min-face-size", type=float, default=0)
    add_device_argument(p)
    p.add_argument("--workers", type=_workers, default="auto",
                   help="videos scored at once: 0 in this process, N in N worker processes (or Ray tasks) sharing "
                        "the cores, each with cores/N threads; auto (default): one per core, or in this process "
                        "for a single video")
    p.add_argument("--threads", type=int, help="CPU threads of each worker (default: cores/workers)")
    p.add_argument("--backend", default="local", choices=["local", "ray"])
    p.add_argument("--address", help="Ray cluster address (default: start a local Ray)")
    p.add_argument("--cache", help="result cache folder (default: $SYNCNET_FCN_CACHE/eval)")
    p.add_argument("--no-cache", action="store_true", help="score everything again and cache nothing")
    add_quiet_argument(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..batch import EvalOptions, ResultCache, collect_videos, run_batch
    from ..errors import InvalidArgumentError
    from ..writers import get_writer

    out_writer = None
    if args.out:
        suffix = Path(args.out).suffix.lower().lstrip(".")
        if suffix not in FORMATS:
            raise InvalidArgumentError(f"--out must end in .csv, .md or .json, got {args.out}")
        out_writer = get_writer(f"eval-{suffix}")
    jobs = collect_videos(args.paths, group_by=args.group_by)
    inputs = {job.path.resolve() for job in jobs}
    if args.out and Path(args.out).resolve() in inputs:
        raise InvalidArgumentError("--out would overwrite one of the input videos")
    options = EvalOptions(engine=args.engine, weights=args.weights, max_offset=args.max_offset,
                          min_track_frames=args.min_track_frames, min_face_size=args.min_face_size,
                          device=args.device)
    cache = None if args.no_cache else ResultCache(args.cache) if args.cache else ResultCache.default()
    bar = None if args.quiet else _VideoBar()
    try:
        batch = run_batch(jobs, options, cache=cache, backend=args.backend, workers=args.workers,
                          threads=args.threads,
                          address=args.address, progress=bar)
    finally:
        if bar is not None:
            bar.close()
    if out_writer is not None:
        out_writer.write(batch, Path(args.out))
    print(get_writer(PRINTED[args.format]).render(batch), end="")
    if batch.failed:
        print(f"{len(batch.failed)} of {len(batch.videos)} videos could not be scored (see their rows)",
              file=sys.stderr)
        return EXIT_SOME_FAILED
    return 0


def _workers(text: str):
    """``auto`` or a whole number (argparse reports anything else as a usage error)."""
    if text.strip().lower() == "auto":
        return "auto"
    return int(text)


class _VideoBar:
    """tqdm over videos with an ETA; cached videos count as done from the start."""

    def __init__(self):
        self.bar = None

    def __call__(self, done: int, total: int, cached: int) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=total, initial=done, desc="scoring videos", unit="video", file=sys.stderr,
                            postfix={"cached": cached}, dynamic_ncols=True)
            return
        self.bar.set_postfix(cached=cached, refresh=False)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
