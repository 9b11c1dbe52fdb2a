"""Whole-pipeline speed at 720p and 1080p: times real time, and the share decoding + tracking takes.

A real single-face clip is upscaled with PyAV/OpenCV (bicubic, H.264 crf 18, its audio copied) to
1280x720 and 1920x1080, ``--seconds`` long, written to the temporary folder once. Each run is a fresh
process (models loaded, then one ``SyncPipeline.run`` timed); the median of ``--repeat`` runs is
printed per (resolution, engine). ``fcn`` runs an OFFICIAL-SIZE network with RANDOM weights from a
fixed seed unless ``--weights`` is given: timings only, its readings mean nothing. ``overhead`` is the
time the engines waited for decoding, face tracking and crops (``tracks_s + crops_s``) over the wall
time of the run.

    python benchmarks/realtime.py                                  # landmark and fcn, 720p and 1080p
    python benchmarks/realtime.py --engines fcn --heights 1080 --runtime torch
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipeline_speed import random_official_weights  # noqa: E402  (benchmarks/ is on the path)

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO.parent / "shared" / "clips" / "edtalk_pose_source2.mp4"  # one face, 256 px, 60 s


def upscaled(source: Path, height: int, seconds: float) -> Path:
    """``source`` scaled to ``height`` (16:9 canvas, face centred), first ``seconds``; made once."""
    import av
    import cv2
    import numpy as np

    width = height * 16 // 9
    path = Path(tempfile.gettempdir()) / f"syncnet_fcn_{source.stem}_{height}p_{int(seconds)}s.mp4"
    if path.exists():
        return path
    partial = path.with_name(path.name + ".part.mp4")
    with av.open(str(source)) as src, av.open(str(partial), "w") as out:
        vin = src.streams.video[0]
        ain = src.streams.audio[0]
        vout = out.add_stream("libx264", rate=25)
        vout.width, vout.height, vout.pix_fmt = width, height, "yuv420p"
        vout.options = {"crf": "18", "preset": "veryfast"}
        aout = out.add_stream_from_template(ain)
        n_frames = int(seconds * 25)
        done = 0
        for packet in src.demux(vin, ain):
            if packet.stream is ain:
                if packet.pts is not None and packet.pts * ain.time_base < seconds:
                    packet.stream = aout
                    out.mux(packet)
                continue
            for frame in packet.decode():
                if done >= n_frames:
                    break
                image = frame.to_ndarray(format="bgr24")
                canvas = np.zeros((height, width, 3), np.uint8)
                side = height
                face = cv2.resize(image, (side * image.shape[1] // image.shape[0], side),
                                  interpolation=cv2.INTER_CUBIC)
                left = (width - face.shape[1]) // 2
                canvas[:, left:left + face.shape[1]] = face
                picture = av.VideoFrame.from_ndarray(canvas, format="bgr24")
                picture.pts = done
                out.mux(vout.encode(picture))
                done += 1
        out.mux(vout.encode())
    os.replace(partial, path)
    return path


def child(video: str, engine: str, weights: str | None, runtime: str) -> dict:
    sys.path.insert(0, str(REPO))
    from syncnet_fcn.pipeline import SyncPipeline

    pipe = SyncPipeline(engine=engine, weights=weights, runtime=runtime)
    started = time.perf_counter()
    report = pipe.run(video)
    wall = time.perf_counter() - started
    t = report.timings
    return {"wall_s": wall, "duration_s": report.duration_s, "tracks_s": t.get("tracks_s", 0.0),
            "crops_s": t.get("crops_s", 0.0), "engine_s": t.get("engine_s", 0.0), "runtime": pipe.runtime}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=SOURCE, help="a real single-face clip to upscale")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--heights", default="720,1080")
    parser.add_argument("--engines", default="landmark,fcn")
    parser.add_argument("--weights", help="fcn weights (default: random official-size, timing only)")
    parser.add_argument("--runtime", default="auto", choices=["auto", "torch", "onnx"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        video, engine, weights, runtime = args.child
        print(json.dumps(child(video, engine, None if weights == "-" else weights, runtime)))
        return

    rows = []
    for height in (int(h) for h in args.heights.split(",")):
        video = upscaled(args.source, height, args.seconds)
        for engine in args.engines.split(","):
            weights = "-" if engine == "landmark" else (args.weights or random_official_weights())
            runs = []
            for _ in range(args.repeat):
                proc = subprocess.run([sys.executable, __file__, "--child", str(video), engine, weights, args.runtime],
                                      capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
                if proc.returncode != 0:
                    raise SystemExit(f"{video.name} / {engine} failed: {proc.stderr.strip().splitlines()[-1:]}")
                runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            run = sorted(runs, key=lambda r: r["wall_s"])[len(runs) // 2]  # the median run
            row = {
                "height": height, "engine": engine, "runtime": run["runtime"], "duration_s": run["duration_s"],
                "walls_s": [round(r["wall_s"], 1) for r in runs],
                "x_realtime": round(run["duration_s"] / statistics.median(r["wall_s"] for r in runs), 2),
                "overhead_share": round((run["tracks_s"] + run["crops_s"]) / run["wall_s"], 3),
                "tracks_s": round(run["tracks_s"], 1), "crops_s": round(run["crops_s"], 1),
                "engine_s": round(run["engine_s"], 1),
            }
            rows.append(row)
            print(f"{height}p {engine:8s} ({row['runtime']}) {row['duration_s']:.0f} s video: {row['x_realtime']:.2f}x "
                  f"real time (walls {row['walls_s']} s), waiting for decode+tracks+crops {row['overhead_share']:.0%} "
                  f"of the run, engine {row['engine_s']} s", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
