"""How far each corpus's sound sits from its lips, measured without any trained model.

A sync model trained on a corpus learns that corpus's own offset as "in sync". This script measures
it model-free: per clip, the inner-lip opening (face mesh, in units of the eye-corner distance)
against the speech-band log energy per 25 fps frame, both standardised, cross-correlated at lags of
±8 frames; the curves are summed over the corpus and the peak is located to a sub-frame with a
parabola. The number is in the SyncNet convention (delaying the audio by S frames lowers it by S) and
has this method's own bias, so compare corpora with each other: the in-sync evaluation clips are the
reference.

    python benchmarks/corpus_lag.py --cache /tmp/landmarks ../shared/train/lrc_ar ../shared/train/grid_s1
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from syncnet_fcn.lip_lag import MAX_LAG, corpus_reading, lag_curve, lip_opening, speech_energy  # noqa: E402,F401

CLIPS = REPO.parent / "shared" / "clips"


def main(argv=None) -> int:
    from syncnet_fcn.landmark.training import cached_tracks
    from syncnet_fcn.evaluation import own_offset
    from syncnet_fcn.media import videos_in

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="*", type=Path, help="folders of training videos (face crops or full frame)")
    p.add_argument("--tracked", nargs="*", type=Path, default=[], help="folders whose faces must be detected")
    p.add_argument("--cache", type=Path, default=None, help="keep the face-mesh landmarks here")
    p.add_argument("--clips-dir", type=Path, default=CLIPS, help="reference: in-sync clips of this manifest")
    args = p.parse_args(argv)

    results = {}
    manifest = json.loads((args.clips_dir / "manifest.json").read_text())
    in_sync = [args.clips_dir / e["file"] for e in manifest
               if e.get("real_or_generated") == "real" and own_offset(e["file"]) == 0]
    groups = [("in-sync evaluation clips", in_sync, False)]
    groups += [(f.name, videos_in(f), True) for f in args.folders]
    groups += [(f.name, videos_in(f), False) for f in args.tracked]
    for name, videos, whole_frame in groups:
        tracks = [t for v in videos for t in cached_tracks(v, args.cache, whole_frame)[:1]]
        reading, used = corpus_reading(tracks)
        results[name] = {"reading_frames": round(reading, 2), "tracks": used}
    reference = results["in-sync evaluation clips"]["reading_frames"]
    for name, r in results.items():
        r["relative_to_in_sync_clips"] = round(r["reading_frames"] - reference, 2)
        print(f"{name:28s} {r['tracks']:5d} tracks  reading {r['reading_frames']:+.2f}  "
              f"relative {r['relative_to_in_sync_clips']:+.2f} frames")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
