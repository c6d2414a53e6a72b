"""The runnable examples in the SPC chart docstrings."""

from __future__ import annotations

import doctest
from types import ModuleType

import pytest

from agent.core.spc import (
    attribute,
    autocorrelation,
    base,
    capability_ci,
    constants,
    cusum,
    ewma,
    imr,
    phase1,
    subgroup,
)

MODULES = [attribute, autocorrelation, base, capability_ci, constants, cusum, ewma, imr, phase1]
MODULES += [subgroup]


@pytest.mark.parametrize("module", MODULES, ids=[m.__name__ for m in MODULES])
def test_docstring_examples_run(module: ModuleType) -> None:
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0
