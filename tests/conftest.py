"""Shared fixtures: a small real bundle trained on simulator data through the export path, the
update tests' signed kit of it, and the demo's failure-mode catalogue.

Plain helpers live in modules beside this file (helpers.py, bundle_kit.py, ...), never in a
test module: no test module imports another.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.config.catalogue import Catalogue
from agent.paths import firmware_configs


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A bundle trained by `lineside-export train` on two hours of simulated normal data, with
    the settings the update, runtime and sink tests were written against (window 32, score max,
    quantile thresholds, no relative channel), not the export's data-driven defaults, which
    tests/integration/export/test_export_defaults.py and the demo cover."""
    from agent.demo.run import write_historian
    from export.pipeline import TrainOptions, run_train

    work = tmp_path_factory.mktemp("bundle")
    csv_path = work / "historian.csv"
    write_historian(csv_path, rows=7200, seed=11)
    out = work / "bundle"
    run_train(
        TrainOptions(
            inputs=[csv_path],
            out=out,
            epochs=25,
            seed=0,
            tag_map=firmware_configs() / "plc" / "simulated-extruder.toml",
            label="test",
            quiet=True,
            window=32,
            score="max",
            beta=1e-3,
            relative=["none"],
            threshold_quantile=0.999,
            threshold_margin=1.25,
            shift_margin=1.25,
        )
    )
    return out


@pytest.fixture(scope="module")
def kit_via_cli() -> bool:
    """Whether `kit` makes its key and bundle files with `lineside-export keygen|sign`.

    A module that tests those commands overrides this fixture to return True."""
    return False


@pytest.fixture(scope="module")
def kit(
    bundle_dir: Path, tmp_path_factory: pytest.TempPathFactory, kit_via_cli: bool
) -> dict[str, Any]:
    """Keys and signed bundle files of `bundle_dir`, one kit per module (see build_kit)."""
    from tests.bundle_kit import build_kit

    return build_kit(bundle_dir, tmp_path_factory.mktemp("kit"), cli=kit_via_cli)


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    """The demo extruder's failure-mode catalogue, its symptoms checked against the line's tags."""
    from tests.explain_helpers import demo_catalogue

    return demo_catalogue()
