"""Appending benchmark rows to a CSV under benchmarks/out (shared by the bench_*.py scripts)."""
from __future__ import annotations

import csv
from pathlib import Path


def append_csv(row: dict, path, fields: list[str] | None = None) -> None:
    """One row at a time, so that a run cut short by a time limit keeps what it measured; the header
    (`fields`, default the row's keys) is written when the file is new."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields or list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)
