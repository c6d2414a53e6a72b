"""Synthetic training data for export tests: correlated normal rows, historian CSVs, windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np

CHANNELS = ["flow", "pressure", "temp", "current"]
LOADINGS = np.array([1.0, 0.6, -0.8, 1.4])
OFFSETS = np.array([50.0, 4.0, 70.0, 12.0])
#: Bundles need 16 x 4 inputs at least: smaller layers are all kept fp32 and int8 is refused.
TRAIN_WINDOW = 16


def normal_rows(n: int, seed: int) -> np.ndarray:
    """Four channels driven by one shared slow process plus small independent noise."""
    rng = np.random.default_rng(seed)
    ar = np.zeros(n)
    shocks = rng.normal(0.0, 0.3, n)
    for i in range(1, n):
        ar[i] = 0.95 * ar[i - 1] + shocks[i]
    base = np.sin(2 * np.pi * np.arange(n) / 150.0) + ar
    rows: np.ndarray = OFFSETS + LOADINGS * base[:, None] + rng.normal(0.0, 0.1, (n, 4))
    return rows


def write_csv(
    path: Path, data: np.ndarray, sep: str = ",", columns: list[str] | None = None
) -> Path:
    """A historian-like CSV: timestamp, the channels, and an `anomaly` label column."""
    names = columns or CHANNELS
    lines = [sep.join(["Timestamp", *names, "anomaly"])]
    for i, row in enumerate(data):
        cells = [f"2025-01-01 00:{i // 60:02d}:{i % 60:02d}", *(f"{v:.5f}" for v in row), "0"]
        lines.append(sep.join(cells))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def scaled_windows(rows: np.ndarray, window: int) -> np.ndarray:
    """Sliding windows of rows scaled as the export scales them (the floored robust scaler)."""
    from agent.core.window import sliding_windows
    from export.pipeline import floored_scaler

    scaler = floored_scaler(rows, rows)
    return sliding_windows(scaler.transform(rows), window).astype(np.float32)


def split_windows(window: int) -> dict[str, np.ndarray]:
    """Train, validation and test windows: normal rows, then a +4 step on channel 1 half-way
    through the faulty copy (so `test` holds the fault)."""
    rows = normal_rows(700, seed=2)
    faulty = rows.copy()
    faulty[:, 1] += np.where(np.arange(700) > 350, 4.0, 0.0)
    w = scaled_windows(np.concatenate([rows, faulty]), window)
    return {"train": w[:400], "val": w[400:520], "test": w[520:]}
