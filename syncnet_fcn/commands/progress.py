"""The CLI's progress bar for the library's ``progress(stage, fraction)`` hooks."""

from __future__ import annotations

import sys


class StageProgressBar:
    """tqdm bar on stderr, one per pipeline stage; silent when stderr is not a terminal-ish stream."""

    LABELS = {"tracks": "finding faces", "sync": "measuring sync"}

    def __init__(self):
        self.stage = None
        self.bar = None

    def __call__(self, stage: str, fraction: float) -> None:
        from tqdm import tqdm

        if stage != self.stage:
            self.close()
            self.stage = stage
            self.bar = tqdm(total=100, desc=self.LABELS.get(stage, stage), unit="%", file=sys.stderr,
                            leave=False, bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}")
        target = int(round(fraction * 100))
        if target > self.bar.n:
            self.bar.update(target - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
