"""The system tests' shared artifact: the .deb, built once per session."""

from __future__ import annotations

import pytest

from tests.system.deb_build import BuiltDeb, build_deb, build_deb_prerequisites


@pytest.fixture(scope="session")
def built_deb(tmp_path_factory: pytest.TempPathFactory) -> BuiltDeb:
    """packaging/build-deb.sh with its defaults (compression included), run once."""
    missing = build_deb_prerequisites()
    if missing:
        pytest.fail(f"cannot build the .deb here: {missing}")
    return build_deb(tmp_path_factory.mktemp("deb"))
