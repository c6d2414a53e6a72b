"""The export's defaults that are the same for every plant, in one light module (the command
line reads them for its help without importing onnx or torch).

- a 16-row window: on a 1 s historian long enough for a step and its settling, short enough to
  flag it within the window;
- a KL weight of 0.1: a smooth latent space, so that the latent distance means something;
- the int8 gate (export/parity.py): at most 1 % of the checked windows may change decision,
  and near the threshold int8 may be off by at most 10 % of it.

What depends on the data is chosen on it: the drifting channels (export/drift.py), the
window score (export/score_choice.py), the thresholds (export/budget.py), the columns
(export/selection.py), the fusion record (export/calibrate.py).
"""

DEFAULT_WINDOW = 16
DEFAULT_BETA = 0.1
#: At most this share of the checked windows may change their decision under int8.
MAX_FLIP_FRACTION = 0.01
#: Near the threshold, int8 may be off by at most this share of the threshold.
MAX_NEAR_THRESHOLD_DIFF = 0.1
