"""Who speaks when, on a clip with a known answer.

Two real single-speaker clips are put side by side; the soundtrack is the left face's voice for the
first half and the right face's for the second (each face keeps moving its lips all along). Each
frame then has one true speaker. The script runs an engine and prints each track's reading, its
speaking segments, and how many frames the report attributes right (the face marked speaking is the
one heard, and only that one).

    python benchmarks/who_speaks.py --engine landmark
    python benchmarks/who_speaks.py --left ../shared/clips/pcavs_00104.mp4 --right ../shared/clips/pcavs_00086.mp4
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CLIPS = REPO.parent / "shared" / "clips"


def make_duo(left: Path, right: Path, target: Path) -> tuple[int, int, int]:
    """Write the side-by-side clip; returns ``(frames, first frame of the right face's voice, width of
    the left half)``."""
    import av

    from syncnet_fcn.media import iter_frames, load_audio

    frames_left = [f for _, f in iter_frames(left)]
    frames_right = [f for _, f in iter_frames(right)]
    n = min(len(frames_left), len(frames_right))
    height = min(frames_left[0].shape[0], frames_right[0].shape[0])
    switch = n // 2
    voice = np.concatenate([load_audio(left)[: switch * 640], load_audio(right)[switch * 640 : n * 640]])
    with av.open(str(target), "w") as out:
        video = out.add_stream("libx264", rate=25)
        video.width = frames_left[0].shape[1] + frames_right[0].shape[1]
        video.height = height
        video.pix_fmt = "yuv420p"
        video.options = {"crf": "18"}
        audio = out.add_stream("aac", rate=16000)
        for i in range(n):
            image = np.hstack([frames_left[i][:height], frames_right[i][:height]])
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24").reformat(format="yuv420p")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode())
        sound = av.AudioFrame.from_ndarray(voice.astype(np.int16)[None], format="s16", layout="mono")
        sound.sample_rate = 16000
        sound.pts = 0
        out.mux(audio.encode(sound))
        out.mux(audio.encode())
    return n, switch, frames_left[0].shape[1]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--engine", default="landmark")
    p.add_argument("--weights", default=None)
    p.add_argument("--left", type=Path, default=CLIPS / "pcavs_00015.mp4")
    p.add_argument("--right", type=Path, default=CLIPS / "pcavs_00098.mp4")
    args = p.parse_args(argv)

    from syncnet_fcn.pipeline import SyncPipeline

    with tempfile.TemporaryDirectory() as tmp:
        duo = Path(tmp) / "duo.mp4"
        n, switch, left_width = make_duo(args.left, args.right, duo)
        report = SyncPipeline(engine=args.engine, weights=args.weights).run(duo)
    truth = np.where(np.arange(n) < switch, 0, 1)  # 0: left face speaks, 1: right face
    speaking = np.zeros((2, n), bool)
    rows = []
    for result in report.tracks:
        side = 0 if result.track.boxes[:, [0, 2]].mean() < left_width else 1
        for segment in result.speaking_segments():
            speaking[side, segment["start_frame"] : segment["end_frame"] + 1] = True
        rows.append({
            "track": result.track_id, "side": "left" if side == 0 else "right",
            "offset_frames": result.sync.offset_frames, "confidence": round(float(result.sync.confidence), 3),
            "reliable": result.sync.reliable,
            "speaking_s": [(s["start_s"], s["end_s"]) for s in result.speaking_segments()],
        })
    right = speaking[truth, np.arange(n)] & ~speaking[1 - truth, np.arange(n)]
    summary = {
        "engine": args.engine,
        "clips": [args.left.name, args.right.name],
        "frames": n,
        "voice_switches_at_s": switch / 25,
        "tracks": rows,
        "frames_attributed_right": round(float(right.mean()), 3),
        "frames_with_both_marked": round(float((speaking[0] & speaking[1]).mean()), 3),
    }
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
