"""syncnet-fcn eval: aggregation, the result cache, backends that never change a number, bad input as rows."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from syncnet_fcn.batch import (EvalOptions, ResultCache, VideoJob, VideoResult, aggregate, collect_videos,
                               run_batch)
from syncnet_fcn.cli import main
from syncnet_fcn.errors import InvalidArgumentError

from conftest import write_test_video


def planted(group: str, lse_c, lse_d, status: str = "ok") -> VideoResult:
    return VideoResult(video=f"/x/{group}/{lse_c}.mp4", group=group, status=status, lse_c=lse_c, lse_d=lse_d,
                       offset_frames=0 if status == "ok" else None, reliable=status == "ok")


def test_aggregate_on_planted_results_counts_every_video():
    from scipy import stats

    c = [7.1, 6.2, 8.4, 5.9]
    d = [6.5, 7.0, 6.1, 7.4]
    rows = [planted("a", x, y) for x, y in zip(c, d)]
    rows += [planted("a", None, None, "no_face"), planted("a", None, None, "no_reading"),
             planted("a", None, None, "unreadable")]
    agg = aggregate(rows)
    assert (agg["videos"], agg["scored"], agg["no_face"], agg["no_reading"], agg["unreadable"]) == (7, 4, 1, 1, 1)
    assert agg["lse_c"]["mean"] == pytest.approx(np.mean(c)) and agg["lse_d"]["median"] == pytest.approx(np.median(d))
    assert agg["lse_c"]["std"] == pytest.approx(np.std(c, ddof=1))
    low, high = stats.t.interval(0.95, len(d) - 1, loc=np.mean(d), scale=stats.sem(d))
    assert agg["lse_d"]["ci95"] == pytest.approx([low, high])
    one = aggregate([planted("b", 3.0, 9.0)])
    assert one["lse_c"]["mean"] == 3.0 and one["lse_c"]["std"] is None and one["lse_c"]["ci95"] is None
    assert aggregate([planted("b", None, None, "no_face")])["lse_c"]["mean"] is None


def test_collect_videos_from_folders_and_globs_with_groups(tmp_path):
    for folder in ("real", "methodA"):
        (tmp_path / folder).mkdir()
        for name in ("b.mp4", "a.mov", "notes.txt"):
            (tmp_path / folder / name).write_bytes(b"x")
    jobs = collect_videos([tmp_path / "real", str(tmp_path / "methodA" / "*.mp4"), tmp_path / "real" / "a.mov"],
                          group_by="folder")
    assert [(j.path.name, j.group) for j in jobs] == [("a.mov", "real"), ("b.mp4", "real"), ("b.mp4", "methodA")]
    with pytest.raises(InvalidArgumentError, match="no such file"):
        collect_videos([tmp_path / "missing.mp4"])
    with pytest.raises(InvalidArgumentError, match="no video matches"):
        collect_videos([str(tmp_path / "*.avi")])


class CountingScorer:
    """Stands in for the model (these tests are about what is recomputed, not about readings)."""

    def __init__(self):
        self.calls = []

    def __call__(self, job: VideoJob, options: EvalOptions) -> VideoResult:
        self.calls.append(job.path.name)
        return VideoResult(video=str(job.path), group=job.group, status="ok", lse_c=1.0, lse_d=2.0, offset_frames=0)


def test_cache_is_used_and_invalidated_when_the_weights_change(tmp_path):
    weights = tmp_path / "my_syncnet.model"
    weights.write_bytes(b"first weights")
    videos = []
    for name in ("one.mp4", "two.mp4"):
        videos.append(tmp_path / name)
        videos[-1].write_bytes(name.encode())
    jobs = collect_videos(videos)
    options = EvalOptions(engine="syncnet", weights=str(weights))
    cache = ResultCache(tmp_path / "cache")
    scorer = CountingScorer()
    first = run_batch(jobs, options, cache=cache, scorer=scorer)
    assert first.computed == 2 and len(scorer.calls) == 2
    again = run_batch(jobs, options, cache=cache, scorer=scorer)
    assert again.computed == 0 and len(scorer.calls) == 2 and all(row.cached for row in again.videos)
    assert [r.lse_d for r in again.videos] == [r.lse_d for r in first.videos]
    weights.write_bytes(b"retrained weights")  # same name, other content
    run_batch(jobs, options, cache=cache, scorer=scorer)
    assert len(scorer.calls) == 4
    videos[0].write_bytes(b"an edited video")  # one file changed: only it is redone
    run_batch(jobs, options, cache=cache, scorer=scorer)
    assert scorer.calls[4:] == ["one.mp4"]
    run_batch(jobs, EvalOptions(engine="syncnet", weights=str(weights), max_offset=10), cache=cache, scorer=scorer)
    assert len(scorer.calls) == 7  # another search range is another number


def die_once(job: VideoJob, options: EvalOptions) -> VideoResult:
    """The worker scoring ``doomed*`` dies the first time (its marker file does not exist yet)."""
    marker = job.path.with_suffix(".died")
    if job.path.name.startswith("doomed") and not marker.exists():
        marker.write_text("x")
        os._exit(1)
    if job.path.name.startswith("cursed"):
        os._exit(1)
    return VideoResult(video=str(job.path), group=job.group, status="ok", lse_c=float(len(job.path.name)),
                       lse_d=1.0, offset_frames=0)


def test_a_worker_that_dies_has_its_videos_retried_none_lost_or_counted_twice(tmp_path):
    names = ["a.mp4", "doomed.mp4", "b.mp4", "c.mp4", "cursed.mp4"]
    for name in names:
        (tmp_path / name).write_bytes(name.encode())
    jobs = [VideoJob(tmp_path / name, "all") for name in names]
    batch = run_batch(jobs, EvalOptions(engine="landmark"), cache=None, workers=2, scorer=die_once)
    assert [Path(row.video).name for row in batch.videos] == names
    by_name = {Path(row.video).name: row for row in batch.videos}
    assert by_name["doomed.mp4"].status == "ok" and by_name["doomed.mp4"].lse_c == len("doomed.mp4")
    assert by_name["cursed.mp4"].status == "failed" and "died 3 times" in by_name["cursed.mp4"].reason
    assert all(by_name[n].status == "ok" for n in ("a.mp4", "b.mp4", "c.mp4"))
    assert batch.overall["scored"] == 4 and batch.overall["failed"] == 1


def report_threads(job: VideoJob, options: EvalOptions) -> VideoResult:
    """What the process scoring ``job`` lets each threaded part use, in ``reason`` (JSON)."""
    import json

    import cv2
    import torch
    from onnx import TensorProto, helper

    from syncnet_fcn.cpu_budget import cpu_threads
    from syncnet_fcn.engines.landmark import mesh_threads
    from syncnet_fcn.limits import decoder_threads
    from syncnet_fcn.onnx_syncnet import _session

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    session = _session(helper.make_model(graph).SerializeToString(), "a relu", None)
    seen = {"budget": cpu_threads(), "torch": torch.get_num_threads(), "opencv": cv2.getNumThreads(),
            "onnx": session.get_session_options().intra_op_num_threads, "mesh": mesh_threads(),
            "decoder": decoder_threads(224, 224), "omp": os.environ.get("OMP_NUM_THREADS"), "pid": os.getpid()}
    return VideoResult(video=str(job.path), group=job.group, status="ok", reason=json.dumps(seen))


def test_each_worker_gets_its_share_of_the_cores_and_every_threaded_part_keeps_to_it(tmp_path):
    import json

    from syncnet_fcn.cpu_budget import available_cores, share_of_cores

    names = ["a.mp4", "b.mp4", "c.mp4"]
    for name in names:
        (tmp_path / name).write_bytes(name.encode())
    jobs = [VideoJob(tmp_path / name, "all") for name in names]
    cores = available_cores()
    for workers in (1, 2):
        batch = run_batch(jobs, EvalOptions(engine="landmark"), cache=None, workers=workers, scorer=report_threads)
        share = share_of_cores(workers)
        assert share == max(1, cores // workers)
        for row in batch.videos:
            seen = json.loads(row.reason)
            assert seen["pid"] != os.getpid()  # scored in a worker process
            assert (seen["budget"], seen["torch"], seen["opencv"], seen["onnx"], seen["omp"]) == \
                (share, share, share, share, str(share)), (workers, seen)
            assert seen["mesh"] == min(2, share) and seen["decoder"] <= share
    # in this process (workers=0) nothing is limited: the budget is all the cores
    here = json.loads(run_batch(jobs[:1], EvalOptions(engine="landmark"), cache=None, workers=0,
                                scorer=report_threads).videos[0].reason)
    assert here["pid"] == os.getpid() and here["budget"] == cores and here["onnx"] == cores


@pytest.mark.parametrize("flags, message", [(["--workers", "-1"], "workers must be 0"),
                                            (["--workers", "2", "--threads", "0"], "threads must be at least 1"),
                                            (["--workers", "many"], "invalid")])
def test_a_bad_worker_or_thread_count_is_a_usage_error(tmp_path, capsys, flags, message):
    (tmp_path / "a.mp4").write_bytes(b"x")
    try:
        code = main(["eval", str(tmp_path / "a.mp4"), "--no-cache", "--quiet", *flags])
    except SystemExit as exc:  # argparse's own refusal
        code = exc.code
    assert code == 2 and message in capsys.readouterr().err


def _same_numbers(a: VideoResult, b: VideoResult) -> bool:
    keys = ("status", "lse_c", "lse_d", "offset_frames", "confidence", "reliable", "frames", "tracks")
    return all(getattr(a, k) == getattr(b, k) for k in keys)


@pytest.mark.slow
def test_bad_input_becomes_rows_and_the_exit_code_says_so(clip, tmp_path, capsys):
    rng = np.random.default_rng(3)
    tone = (3000 * np.sin(np.arange(16000 * 2) * 2 * math.pi * 220 / 16000)).astype(np.int16)
    write_test_video(tmp_path / "noface.mp4", [rng.integers(0, 40, (96, 128, 3), dtype=np.uint8) for _ in range(50)],
                     tone)
    write_test_video(tmp_path / "silent.mp4", [np.full((96, 128, 3), 90, np.uint8)] * 25)
    (tmp_path / "broken.mp4").write_bytes(b"not a video at all")
    good = tmp_path / "good.mpg"
    good.write_bytes(clip("lrw_astorfi_sample1.mp4").read_bytes())
    out = tmp_path / "results.csv"
    code = main(["eval", str(tmp_path), "-o", str(out), "--cache", str(tmp_path / "cache"), "--quiet"])
    assert code == 1
    captured = capsys.readouterr()
    assert "3 of 4 videos could not be scored" in captured.err
    rows = {line.split(",")[0].rsplit("/", 1)[-1]: line for line in out.read_text().splitlines()[1:]
            if line.split(",")[2] == ""}
    assert ",no_face," in rows["noface.mp4"] and ",no_audio," in rows["silent.mp4"]
    assert ",unreadable," in rows["broken.mp4"] and ",ok," in rows["good.mpg"]
    assert "| all | 4 | 1 |" in captured.out


@pytest.mark.slow
def test_ray_gives_the_numbers_of_a_local_run(clip, tmp_path):
    ray = pytest.importorskip("ray")
    jobs = [VideoJob(clip("lrw_astorfi_sample1.mp4"), "lrw"), VideoJob(clip("grid_bbaf2n.mpg"), "grid")]
    options = EvalOptions(engine="landmark")
    local = run_batch(jobs, options, cache=None)
    names = ["a.mp4", "doomed.mp4"]
    for name in names:
        (tmp_path / name).write_bytes(name.encode())
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        distributed = run_batch(jobs, options, cache=None, backend="ray")
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray workers cannot import tests/
        dying = run_batch([VideoJob(tmp_path / n, "all") for n in names], options, cache=None, backend="ray",
                          scorer=die_once)
    finally:
        ray.shutdown()
    assert all(row.status == "ok" for row in local.videos)
    assert [_same_numbers(a, b) for a, b in zip(local.videos, distributed.videos)] == [True, True]
    assert distributed.groups == local.groups
    # a task whose worker died is run again, and counted once (three deaths: see the local test)
    assert [Path(row.video).name for row in dying.videos] == names
    assert [row.status for row in dying.videos] == ["ok", "ok"]
    assert (tmp_path / "doomed.died").exists()


def test_comparison_table_writers_carry_the_aggregate():
    import csv
    import io

    from syncnet_fcn.batch import BatchResult
    from syncnet_fcn.writers import get_writer

    rows = [planted("real", 7.0, 6.0), planted("real", 8.0, 6.5), planted("gen", 5.0, 8.0),
            planted("gen", None, None, "no_face")]
    batch = BatchResult(videos=rows, engine="syncnet", weights_sha256="ab" * 32, options=EvalOptions())
    table = list(csv.DictReader(io.StringIO(get_writer("eval-groups-csv").render(batch))))
    assert [r["group"] for r in table] == ["real", "gen", "all"]
    assert float(table[0]["lse_c_mean"]) == 7.5 and table[1]["no_face"] == "1" and table[2]["videos"] == "4"
    assert float(table[2]["lse_d_median"]) == pytest.approx(6.5)
    markdown = get_writer("eval-md").render(batch)
    assert "| gen | 2 | 1 |" in markdown and "| **all** | 4 | 3 |" in markdown and "no_face" in markdown
