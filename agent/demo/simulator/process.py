"""The process model of a single-screw extrusion line. Pure: no I/O, no clocks.

One `step()` advances the line by `dt` seconds of line time and returns the nine measured
signals. Hidden states drive the correlations a process engineer expects:

- feed density wanders (minutes): the gravimetric controller moves screw speed to hold
  throughput, so speed, motor current, melt temperature and pressure move together;
- melt viscosity wanders (a few minutes, material lot and moisture): pressure and motor current
  rise with it, shear heating raises melt temperature;
- the hall temperature follows a slow cycle: cooling water and barrel temperatures drift with it.

Every sensor adds its own white noise. Faults act on one sensor at a time, as a real sensor or
mechanical fault would, and are switched on and off by `inject` and `clear`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Signal:
    """One measured signal of the line: name, unit, normal level and sensor noise."""

    name: str
    unit: str
    description: str
    noise: float


SIGNALS: tuple[Signal, ...] = (
    Signal("screw_speed", "rpm", "Extruder screw speed", 0.25),
    Signal("throughput", "kg/h", "Gravimetric feeder throughput", 0.5),
    Signal("motor_current", "A", "Main drive motor current", 0.3),
    Signal("barrel_temp", "degC", "Barrel zone 3 temperature", 0.15),
    Signal("melt_temp", "degC", "Melt temperature at the die", 0.25),
    Signal("melt_pressure", "bar", "Melt pressure before the die", 0.8),
    Signal("vibration_rms", "mm/s", "Gearbox vibration velocity RMS", 0.06),
    Signal("cooling_water_temp", "degC", "Cooling water return temperature", 0.08),
    Signal("line_speed", "m/min", "Haul-off line speed", 0.05),
)
SIGNAL_NAMES = tuple(s.name for s in SIGNALS)
_INDEX = {name: i for i, name in enumerate(SIGNAL_NAMES)}
SPIKE_EVERY = 6  # samples between spikes, on average
LEAK_TAU_S = 180.0  # a leak loses 63 % of its `magnitude` in this many seconds


class FaultKind(Enum):
    """The fault types the simulator can inject."""

    STEP = "step"  # a sensor offset appears at once (transducer shift, partial die blockage)
    DRIFT = "drift"  # a sensor walks away slowly (ageing thermocouple)
    VARIANCE = "variance"  # the noise grows (bearing wear, loose mounting)
    STUCK = "stuck"  # the reading freezes at its last value (frozen transmitter)
    DECOUPLE = "decouple"  # a signal stops following the process it belongs to
    SPIKES = "spikes"  # single readings far off now and then (a loose contact, EMI)
    LEAK = "leak"  # a slow loss that levels off (a leaking impulse line, a fouling sensor)


@dataclass
class Fault:
    """One fault on one signal; `magnitude` is in the signal's units (or a factor)."""

    kind: FaultKind
    signal: str
    magnitude: float = 0.0
    started_at: float = 0.0
    _frozen: float | None = field(default=None, repr=False)
    _own: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        if self.signal not in _INDEX:
            raise ValueError(f"unknown signal {self.signal!r}; known: {', '.join(SIGNAL_NAMES)}")


def _ar1(state: float, tau_s: float, dt: float, rng: np.random.Generator) -> float:
    """One step of a unit-variance AR(1) process with time constant `tau_s`."""
    phi = math.exp(-dt / tau_s)
    return phi * state + math.sqrt(1.0 - phi * phi) * float(rng.standard_normal())


class ExtrusionLine:
    """The line: hidden states, sensors and active faults.

    Examples
    --------
    >>> line = ExtrusionLine(seed=1)
    >>> row = line.step()
    >>> len(row) == len(SIGNALS)
    True
    >>> bool(80.0 < row[0] < 100.0)  # screw speed, rpm
    True
    """

    def __init__(self, seed: int = 0, dt: float = 1.0, hall_period_s: float = 1800.0) -> None:
        self.dt = dt
        self.t = 0.0
        self.hall_period_s = hall_period_s
        self._rng = np.random.default_rng(seed)
        self._feed = 0.0
        self._viscosity = 0.0
        self._hall_phase = float(self._rng.uniform(0.0, 2.0 * math.pi))
        self._noise = np.array([s.noise for s in SIGNALS])
        self.faults: dict[str, Fault] = {}
        self._last = self._true_values(self._feed, self._viscosity)

    def _true_values(self, feed: float, visc: float) -> FloatArray:
        """Noise-free signal values for the given hidden state at the current time."""
        hall = math.sin(2.0 * math.pi * self.t / self.hall_period_s + self._hall_phase)
        speed = 90.0 + 1.2 * feed
        throughput = 120.0 + 0.4 * feed
        barrel = 210.0 + 0.6 * hall
        melt = barrel + 5.0 + 0.12 * (speed - 90.0) + 0.9 * visc
        current = 42.0 + 0.3 * (speed - 90.0) + 1.6 * visc - 0.15 * (melt - 215.0)
        pressure = 180.0 + 0.9 * (speed - 90.0) + 4.5 * visc - 0.6 * (melt - 215.0)
        vibration = 2.2 + 0.02 * (speed - 90.0)
        cooling = 18.0 + 1.2 * hall + 0.05 * (current - 42.0)
        line_speed = 25.0 + 0.2 * (throughput - 120.0)
        return np.array(
            [speed, throughput, current, barrel, melt, pressure, vibration, cooling, line_speed]
        )

    def inject(self, fault: Fault) -> None:
        """Start a fault now (replaces any fault already on that signal)."""
        fault.started_at = self.t
        fault._frozen = None
        fault._own = float(self._rng.standard_normal())  # the other process is mid-wander
        self.faults[fault.signal] = fault

    def clear(self, signal: str | None = None) -> None:
        """End the fault on `signal`, or every fault."""
        if signal is None:
            self.faults.clear()
        else:
            self.faults.pop(signal, None)

    def step(self) -> FloatArray:
        """Advance one sample period and return the measured values, faults applied."""
        self.t += self.dt
        self._feed = _ar1(self._feed, 90.0, self.dt, self._rng)
        self._viscosity = _ar1(self._viscosity, 240.0, self.dt, self._rng)
        true = self._true_values(self._feed, self._viscosity)
        noise = self._noise * self._rng.standard_normal(len(SIGNALS))
        measured = true + noise
        for fault in self.faults.values():
            i = _INDEX[fault.signal]
            elapsed = self.t - fault.started_at
            if fault.kind is FaultKind.STEP:
                measured[i] += fault.magnitude
            elif fault.kind is FaultKind.DRIFT:
                measured[i] += fault.magnitude * elapsed
            elif fault.kind is FaultKind.VARIANCE:
                measured[i] = true[i] + noise[i] * fault.magnitude
            elif fault.kind is FaultKind.STUCK:
                if fault._frozen is None:
                    fault._frozen = float(self._last[i])
                measured[i] = fault._frozen
            elif fault.kind is FaultKind.SPIKES:
                # One reading in about SPIKE_EVERY is off by `magnitude`, either way.
                if self._rng.random() < 1.0 / SPIKE_EVERY:
                    measured[i] += fault.magnitude * float(self._rng.choice((-1.0, 1.0)))
            elif fault.kind is FaultKind.LEAK:
                measured[i] += fault.magnitude * (1.0 - math.exp(-elapsed / LEAK_TAU_S))
            elif fault.kind is FaultKind.DECOUPLE:
                # The signal keeps its level and spread (`magnitude` is its usual standard
                # deviation) but follows another process, as when a drive's current is mapped
                # to the wrong register after maintenance: no single-signal chart can see it.
                fault._own = _ar1(fault._own, 90.0, self.dt, self._rng)
                at_rest = self._true_values(0.0, 0.0)[i]
                measured[i] = at_rest + fault.magnitude * fault._own + noise[i]
        self._last = measured
        return measured


def historian(rows: int, seed: int = 0, dt: float = 1.0) -> FloatArray:
    """`rows` samples of normal operation, as a (rows, signals) array."""
    line = ExtrusionLine(seed=seed, dt=dt)
    return np.stack([line.step() for _ in range(rows)])
