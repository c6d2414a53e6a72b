"""Robust per-channel scaling shared by the export path and the device."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

# The interquartile range of a standard normal: dividing by it makes `scale` comparable to sigma.
_IQR_OF_NORMAL = 1.3489795003921634


@dataclass(frozen=True)
class RobustScaler:
    """Centre on the median, divide by the IQR expressed in sigma units.

    Examples
    --------
    >>> import numpy as np
    >>> s = RobustScaler.fit(np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]]))
    >>> s.center.tolist()
    [2.0, 20.0]
    >>> s.transform(np.array([[2.0, 20.0]])).tolist()
    [[0.0, 0.0]]
    """

    center: FloatArray
    scale: FloatArray

    @classmethod
    def fit(cls, data: FloatArray) -> RobustScaler:
        """Estimate centre and scale from rows of normal operation (rows x channels)."""
        if data.ndim != 2 or data.shape[0] < 2:
            raise ValueError("RobustScaler.fit needs a 2-D array with at least two rows")
        center = np.median(data, axis=0)
        q75, q25 = np.percentile(data, [75.0, 25.0], axis=0)
        scale = (q75 - q25) / _IQR_OF_NORMAL
        # A channel that never moved in training (a constant setpoint) must not divide by zero.
        fallback = np.std(data, axis=0)
        scale = np.where(scale > 0, scale, np.where(fallback > 0, fallback, 1.0))
        return cls(center=center.astype(np.float64), scale=scale.astype(np.float64))

    @classmethod
    def from_dict(cls, raw: dict[str, list[float]]) -> RobustScaler:
        """Rebuild from the manifest's `scaler` entry."""
        return cls(
            center=np.asarray(raw["center"], dtype=np.float64),
            scale=np.asarray(raw["scale"], dtype=np.float64),
        )

    def to_dict(self) -> dict[str, object]:
        """Serialise for the manifest."""
        return {"kind": "robust", "center": self.center.tolist(), "scale": self.scale.tolist()}

    def transform(self, data: FloatArray) -> FloatArray:
        """Scale rows (or windows) of raw values; the last axis is the channel axis."""
        return (data - self.center) / self.scale
