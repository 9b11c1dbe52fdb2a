"""Speed of the fused engine at 720p against each member, side by side, in fresh processes.

A real talking-head clip is scaled to 1280×720 (the face letterboxed at 720×720, sound copied), then
each engine runs the whole pipeline (tracks + crops + engine) on it in its own fresh process, engines
alternating round by round so that a change in the machine's load hits them alike. Prints each run's
multiple of real time and the fused/landmark time ratio per round.

    python benchmarks/fused_speed.py [--clip edtalk_pose_source2.mp4] [--seconds 20] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLIPS = REPO.parent / "shared" / "clips"


def make_720p(source: Path, seconds: float, out: Path) -> Path:
    """``source``'s first ``seconds`` at 1280×720, 25 fps, its sound kept."""
    import av
    import cv2
    import numpy as np

    sys.path.insert(0, str(REPO))
    from syncnet_fcn.media import load_audio

    audio = load_audio(source)[: int(seconds * 16000)]
    with av.open(str(source)) as src, av.open(str(out), "w") as dst:
        vout = dst.add_stream("libx264", rate=25)
        vout.width, vout.height, vout.pix_fmt = 1280, 720, "yuv420p"
        aout = dst.add_stream("aac", rate=16000)
        aout.layout = "mono"
        for index, frame in enumerate(src.decode(video=0)):
            if index >= seconds * 25:
                break
            img = frame.to_ndarray(format="bgr24")
            side = 720
            scaled = cv2.resize(img, (side * img.shape[1] // img.shape[0], side), interpolation=cv2.INTER_CUBIC)
            canvas = np.zeros((720, 1280, 3), np.uint8)
            left = (1280 - scaled.shape[1]) // 2
            canvas[:, left : left + scaled.shape[1]] = scaled[:, : 1280]
            for packet in vout.encode(av.VideoFrame.from_ndarray(canvas, format="bgr24")):
                dst.mux(packet)
        for packet in vout.encode():
            dst.mux(packet)
        frame = av.AudioFrame.from_ndarray(audio.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 16000
        for packet in aout.encode(frame):
            dst.mux(packet)
        for packet in aout.encode():
            dst.mux(packet)
    return out


def run_once(video: Path, engine: str) -> dict:
    child = REPO / "benchmarks" / "pipeline_speed.py"
    proc = subprocess.run([sys.executable, str(child), "--child", str(video), engine, "-"], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    if proc.returncode != 0:
        raise SystemExit(f"{engine} failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clip", default="edtalk_pose_source2.mp4", help="a clip of ../shared/clips (one face)")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--engines", default="landmark,fused")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)

    engines = args.engines.split(",")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        video = make_720p(CLIPS / args.clip, args.seconds, Path(tmp) / "clip_720p.mp4")
        for round_ in range(1, args.rounds + 1):
            walls = {}
            for engine in engines:
                row = run_once(video, engine)
                row["round"] = round_
                rows.append(row)
                walls[engine] = row["wall_s"]
                print(f"round {round_}  {engine:9s} {row['duration_s']:5.1f} s of 720p video in {row['wall_s']:6.1f} s "
                      f"= {row['x_realtime']:5.2f}x real time (tracks {row['tracks_s']:.1f} s, crops "
                      f"{row['crops_s']:.1f} s, engine {row['engine_s']:.1f} s)", flush=True)
            if "landmark" in walls and "fused" in walls:
                print(f"round {round_}  fused / landmark time: {walls['fused'] / walls['landmark']:.2f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
