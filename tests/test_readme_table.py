"""README's accuracy table is written from a benchmark summary, between its markers only."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from readme_table import BEGIN, END, write_readme_table  # noqa: E402

from syncnet_fcn.evaluation import ShiftResult, benchmark_summary  # noqa: E402


def summary(right: int, of: int) -> dict:
    results = [ShiftResult(f"grid_{i}.mpg", "grid", False, 0, 0 if i < right else 5, 0, 0, frames=60)
               for i in range(of)]
    return benchmark_summary(results)


def test_table_replaces_only_the_text_between_the_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nbefore\n{BEGIN}\nold table\n{END}\nafter\n")
    payload = {"engine": "fused", "shifts": [-3, 0, 4], "summary": summary(3, 4),
               "views": {"fused": {"summary": summary(3, 4)}, "landmark": {"summary": summary(1, 4)}}}
    (tmp_path / "s.json").write_text(json.dumps(payload))
    write_readme_table(tmp_path / "s.json", readme)
    text = readme.read_text()
    assert text.startswith("# Title\n\nbefore\n") and text.endswith(f"{END}\nafter\n")
    assert "old table" not in text
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert rows[0].startswith("| `fused` | 75.0 % |") and rows[1].startswith("| `landmark` | 25.0 % |")
    assert "| `fused` (copies) | – | 1-2 s" not in text and "75.0 % (4)" in text


def test_a_readme_without_markers_is_refused(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    (tmp_path / "s.json").write_text(json.dumps({"engine": "x", "shifts": [0], "summary": summary(1, 1)}))
    with pytest.raises(SystemExit, match="no accuracy-table markers"):
        write_readme_table(tmp_path / "s.json", readme)
    assert readme.read_text() == "# no markers\n"
