"""A one-line progress bar for training, drawn on stderr only when it is a terminal.

    training [##########----------]  30/60 epochs  val 0.01234  best 0.01200 @ 27

Off with `--quiet` and whenever stderr is not a TTY (CI logs, pipes): then the trainer's
plain per-epoch lines are written instead, one per epoch, which read well in a log file.
"""

from __future__ import annotations

from typing import TextIO

WIDTH = 20


class ProgressBar:
    """Redraws one line per epoch with `\\r`; `close` ends the line."""

    def __init__(self, stream: TextIO, total: int) -> None:
        self.stream = stream
        self.total = total
        self.best = float("inf")
        self.best_epoch = 0
        self._open = False

    def update(self, epoch: int, val_loss: float) -> None:
        """Draw the bar after `epoch` of `total`."""
        if val_loss < self.best:
            self.best, self.best_epoch = val_loss, epoch
        filled = round(WIDTH * epoch / self.total) if self.total else WIDTH
        bar = "#" * filled + "-" * (WIDTH - filled)
        self.stream.write(
            f"\rtraining [{bar}] {epoch:3d}/{self.total} epochs  val {val_loss:.5f}  "
            f"best {self.best:.5f} @ {self.best_epoch}"
        )
        self.stream.flush()
        self._open = True

    def close(self) -> None:
        """Finish the bar's line (early stop or last epoch)."""
        if self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False


def wants_bar(stream: TextIO, quiet: bool) -> bool:
    """A bar only on an interactive stderr and without --quiet."""
    isatty = getattr(stream, "isatty", None)
    return not quiet and callable(isatty) and bool(isatty())
