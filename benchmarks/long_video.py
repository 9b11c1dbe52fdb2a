"""Peak memory against video length: does anything grow with duration but the small per-frame results?

Builds videos of the requested lengths by looping a real clip (re-encoded with its own audio, H.264
+ AAC), then runs the whole pipeline on each in a fresh process (``pipeline_speed.py``'s child) and
prints wall time, peak RSS and the growth of peak RSS per added minute. A live-stream recording of
5 hours is 300 minutes: multiply. Two videos per length: ``one-track`` loops a clip whose loops join
into one face track; ``many-shot`` loops a short clip whose every loop is a cut, so an edited video's
many short face tracks (a 10-minute video of ``pcavs_00098``: 61 tracks) — then the difference of the
two at one length is what the extra tracks cost. ``--readings`` keeps every run's report, to check
that a change leaves every track's reading as it was.

    python benchmarks/long_video.py [--minutes 1 10 30] [--engines landmark,fcn,syncnet]
        [--weights checkpoints/syncnet_light.pt] [--clip edtalk_pose_source2.mp4]
        [--many-shot-clip pcavs_00098.mp4] [--videos one-track,many-shot] [--workdir DIR]
        [--readings DIR] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CLIPS = REPO.parent / "shared" / "clips"
sys.path.insert(0, str(REPO))


def looped_video(source: Path, minutes: float, out: Path) -> Path:
    """``source`` repeated (video and audio together) to last ``minutes``; written once, then reused."""
    import av

    from syncnet_fcn import AUDIO_SAMPLE_RATE, SAMPLES_PER_FRAME, TIMELINE_FPS
    from syncnet_fcn.media import encode_audio, iter_frames, load_audio

    if out.exists():
        return out
    frames = [image for _, image in iter_frames(source)]
    audio = load_audio(source, end_frame=len(frames))
    total = int(round(minutes * 60 * TIMELINE_FPS))
    partial = out.with_suffix(".part.mp4")
    with av.open(str(partial), "w") as container:
        video = container.add_stream("libx264", rate=TIMELINE_FPS)
        video.height, video.width = frames[0].shape[:2]
        video.pix_fmt, video.options = "yuv420p", {"preset": "ultrafast", "crf": "23"}
        sound = container.add_stream("aac", rate=AUDIO_SAMPLE_RATE)
        sound.layout = "mono"
        for i in range(total):
            picture = av.VideoFrame.from_ndarray(frames[i % len(frames)], format="bgr24")
            container.mux(video.encode(picture))
        container.mux(video.encode())
        encode_audio(container, sound, np.resize(audio, total * SAMPLES_PER_FRAME))
    partial.rename(out)
    return out


def run_child(video: Path, engine: str, weights: str, report: Path | None) -> dict | None:
    """One pipeline run in a fresh process (``pipeline_speed.py``'s child): its row, or None if it failed."""
    import pipeline_speed

    command = [sys.executable, pipeline_speed.__file__, "--child", str(video), engine, weights]
    if report is not None:
        command += ["--report", str(report)]
    proc = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    if proc.returncode != 0:
        print(f"{video.name} / {engine}: failed: {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 30])
    parser.add_argument("--engines", default="landmark")
    parser.add_argument("--clip", default="edtalk_pose_source2.mp4", help="a clip of ../shared/clips to loop")
    parser.add_argument("--many-shot-clip", default="pcavs_00098.mp4",
                        help="a short clip looped into a many-shot video: every loop is a cut and a new face track")
    parser.add_argument("--videos", default="one-track,many-shot", help="which of the two looped videos to run")
    parser.add_argument("--weights", help="real weights for syncnet/fcn (default: random official-size)")
    parser.add_argument("--workdir", help="where the looped videos are kept (default: a temporary folder)")
    parser.add_argument("--readings", help="write each run's report (every track's reading) to this folder")
    parser.add_argument("--json", help="write the rows here")
    args = parser.parse_args()

    import pipeline_speed

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="syncnet_fcn_long_"))
    workdir.mkdir(parents=True, exist_ok=True)
    readings = Path(args.readings) if args.readings else None
    if readings is not None:
        readings.mkdir(parents=True, exist_ok=True)
    sources = {"one-track": CLIPS / args.clip, "many-shot": CLIPS / args.many_shot_clip}
    kinds = args.videos.split(",")
    rows = []
    for engine in args.engines.split(","):
        weights = "-"
        if engine in ("syncnet", "fcn"):
            weights = args.weights or pipeline_speed.random_official_weights()
        engine_rows = []
        for kind in kinds:
            for minutes in sorted(args.minutes):
                source = sources[kind]
                video = looped_video(source, minutes, workdir / f"{source.stem}_{minutes:g}min.mp4")
                report = None if readings is None else readings / f"{video.stem}.{engine}.json"
                row = run_child(video, engine, weights, report)
                if row is None:
                    continue
                row |= {"minutes": minutes, "kind": kind}
                engine_rows.append(row)
                print(f"{engine:9s} {kind:9s} {minutes:6g} min  wall {row['wall_s']:7.1f} s  "
                      f"({row['x_realtime']:.2f}x real time)  peak RSS {row['peak_rss_mb']:6d} MB  "
                      f"tracks {row['n_tracks']}", flush=True)
            kind_rows = [r for r in engine_rows if r["kind"] == kind]
            if len(kind_rows) >= 2:
                first, last = kind_rows[0], kind_rows[-1]
                slope = (last["peak_rss_mb"] - first["peak_rss_mb"]) / (last["minutes"] - first["minutes"])
                print(f"{engine:9s} {kind:9s} peak RSS grows {slope:.1f} MB per minute of video "
                      f"(5 hours: about {first['peak_rss_mb'] + slope * (300 - first['minutes']):.0f} MB)")
                for row in kind_rows:
                    row["rss_mb_per_minute"] = round(slope, 2)
        # the many-shot video against the one-track one at the same length: what the extra tracks cost
        by_length = {(r["kind"], r["minutes"]): r for r in engine_rows}
        for minutes in sorted(args.minutes):
            one, many = by_length.get(("one-track", minutes)), by_length.get(("many-shot", minutes))
            if one and many:
                extra = many["peak_rss_mb"] - one["peak_rss_mb"]
                print(f"{engine:9s} {minutes:6g} min: many-shot ({many['n_tracks']} tracks) peak RSS "
                      f"{extra:+d} MB against one track ({one['n_tracks']})")
        rows += engine_rows
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
