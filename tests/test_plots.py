"""The "who speaks when" figure and the choice of engine it follows, on planted reports."""

from __future__ import annotations

import numpy as np
from matplotlib.colors import to_hex

from syncnet_fcn import plots


def planted_report(engine: str, reliable: bool, tracks: list[tuple[int, int, list[tuple[int, int]]]]) -> dict:
    """tracks: (start_frame, end_frame, [(first, last) speaking frames])."""
    return {
        "engine": engine, "fps": 25, "duration_s": 20.0, "reliable": reliable,
        "tracks": [
            {"track_id": i, "start_frame": start, "end_frame": end,
             "speaking_segments": [{"start_frame": a, "end_frame": b, "start_s": a / 25, "end_s": (b + 1) / 25}
                                   for a, b in segments]}
            for i, (start, end, segments) in enumerate(tracks)
        ],
    }


def test_the_speaking_views_follow_the_first_engine_with_a_reliable_reading():
    unsure, sure = planted_report("syncnet", False, []), planted_report("landmark", True, [])
    assert plots.speaking_engine({"syncnet": unsure, "fcn": unsure, "landmark": sure}) == "landmark"
    assert plots.speaking_engine({"landmark": sure, "fcn": {**sure, "engine": "fcn"}}) == "landmark"
    assert plots.speaking_engine({"syncnet": unsure, "fcn": unsure}) == "syncnet"
    assert plots.speaking_engine({}) is None


def bars(ax, color: str) -> list[tuple[float, float, float]]:
    """(left, right, row centre) of every bar drawn in ``color``."""
    found = []
    for collection in ax.collections:
        if to_hex(collection.get_facecolor()[0], keep_alpha=False) != color:
            continue
        for path in collection.get_paths():
            xs, ys = path.vertices[:, 0], path.vertices[:, 1]
            found.append((round(xs.min(), 3), round(xs.max(), 3), round((ys.min() + ys.max()) / 2, 3)))
    return sorted(found)


def test_the_timeline_draws_each_face_on_screen_and_speaking_where_its_segments_say():
    report = planted_report("landmark", True, [(0, 249, [(0, 49), (100, 149)]), (50, 499, [(200, 299)])])
    fig = plots.speaking_figure(report)
    ax = fig.axes[0]
    assert [label.get_text() for label in ax.get_yticklabels()] == ["face 0", "face 1"]
    assert bars(ax, plots.SPEAKING_COLOR) == [(0.0, 2.0, 0.0), (4.0, 6.0, 0.0), (8.0, 12.0, 1.0)]
    assert bars(ax, plots.SILENT_COLOR) == [(0.0, 10.0, 0.0), (2.0, 20.0, 1.0)]
    assert ax.get_xlim() == (0.0, 20.0)
    assert np.isfinite(fig.get_size_inches()).all()


def test_the_timeline_of_a_video_without_faces_says_so():
    fig = plots.speaking_figure(planted_report("landmark", False, []))
    assert any("no face tracks" in text.get_text() for text in fig.axes[0].texts)
