"""The demo's fault plan and its scoring: which fault was caught when, and false alarms. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent.demo.simulator.process import Fault, FaultKind

WARMUP_S = 60.0  # line seconds of normal operation before the first fault
FAULT_S = 40.0  # how long each fault lasts
MIN_SEGMENT_S = 90.0  # fault plus enough normal time after it for alarms to clear
GRACE_S = 30.0  # after a fault clears, alarms still belong to it for this long


@dataclass(frozen=True)
class PlannedFault:
    """One fault of the demo: what, on which signal, how big, and a line for the table."""

    kind: FaultKind
    signal: str
    magnitude: float
    text: str

    def make(self) -> Fault:
        """A fresh simulator fault."""
        return Fault(kind=self.kind, signal=self.signal, magnitude=self.magnitude)


DEMO_FAULTS: tuple[PlannedFault, ...] = (
    PlannedFault(FaultKind.STEP, "melt_pressure", 8.0, "pressure transducer offset +8 bar"),
    PlannedFault(FaultKind.DRIFT, "barrel_temp", 0.04, "thermocouple drifting +0.04 degC/s"),
    PlannedFault(FaultKind.VARIANCE, "vibration_rms", 5.0, "gearbox vibration noise x5"),
    PlannedFault(FaultKind.STUCK, "throughput", 0.0, "feeder throughput reading frozen"),
    PlannedFault(FaultKind.DECOUPLE, "motor_current", 1.4, "motor current stops following load"),
)


@dataclass
class FaultRecord:
    """A fault as it happened and as it was (or was not) detected, in line seconds."""

    planned: PlannedFault
    injected_at: float
    cleared_at: float
    detected_at: float | None = None
    detector: str | None = None

    @property
    def delay_s(self) -> float | None:
        """Seconds from injection to the first alarm, or None if missed."""
        return None if self.detected_at is None else self.detected_at - self.injected_at

    def covers(self, t: float) -> bool:
        """True if an alarm at line time `t` belongs to this fault."""
        return self.injected_at <= t <= self.cleared_at + GRACE_S


def plan(total_s: float) -> list[FaultRecord]:
    """Spread the demo faults evenly over `total_s` line seconds after the warm-up."""
    segment = (total_s - WARMUP_S) / len(DEMO_FAULTS)
    if segment < MIN_SEGMENT_S:
        need = WARMUP_S + MIN_SEGMENT_S * len(DEMO_FAULTS)
        raise ValueError(
            f"the demo needs at least {need:.0f} line seconds for {len(DEMO_FAULTS)} faults; "
            f"raise --seconds or --speedup (seconds x speedup = line seconds)"
        )
    records = []
    for i, fault in enumerate(DEMO_FAULTS):
        start = WARMUP_S + i * segment
        records.append(FaultRecord(fault, injected_at=start, cleared_at=start + FAULT_S))
    return records


@dataclass
class DemoScore:
    """Alarms sorted into detections and false alarms."""

    faults: list[FaultRecord]
    total_s: float
    false_alarms: list[tuple[float, str]] = field(default_factory=list)

    def alarm_raised(self, t: float, detector: str) -> None:
        """Account one raised alarm at line time `t`."""
        for record in self.faults:
            if record.covers(t):
                if record.detected_at is None:
                    record.detected_at = t
                    record.detector = detector
                return
        self.false_alarms.append((t, detector))

    @property
    def normal_seconds(self) -> float:
        """Line seconds not covered by any fault (including its grace period)."""
        covered = sum(
            min(r.cleared_at + GRACE_S, self.total_s) - r.injected_at for r in self.faults
        )
        return self.total_s - covered

    def to_json(self) -> dict[str, Any]:
        """The summary in the documented JSON shape."""
        return {
            "faults": [
                {
                    "kind": r.planned.kind.value,
                    "signal": r.planned.signal,
                    "injected_at": round(r.injected_at, 1),
                    "detected_at": None if r.detected_at is None else round(r.detected_at, 1),
                    "delay_s": None if r.delay_s is None else round(r.delay_s, 1),
                    "detector": r.detector,
                }
                for r in self.faults
            ],
            "false_alarms": len(self.false_alarms),
            "normal_seconds": round(self.normal_seconds, 1),
        }

    def table(self) -> str:
        """The summary as a plain-text table."""
        lines = [
            f"{'fault':<10} {'signal':<15} {'injected':>9} {'detected':>9} {'delay':>7}  detector",
        ]
        for r in self.faults:
            detected = "missed" if r.detected_at is None else f"{r.detected_at:8.1f}s"
            delay = "-" if r.delay_s is None else f"{r.delay_s:5.1f}s"
            lines.append(
                f"{r.planned.kind.value:<10} {r.planned.signal:<15} {r.injected_at:8.1f}s "
                f"{detected:>9} {delay:>7}  {r.detector or '-'}"
            )
        lines.append(
            f"false alarms: {len(self.false_alarms)} in {self.normal_seconds:.0f} s of normal "
            f"operation"
            + (
                ""
                if not self.false_alarms
                else " (at " + ", ".join(f"{t:.0f}s {d}" for t, d in self.false_alarms) + ")"
            )
        )
        return "\n".join(lines)
