"""The stick may change or vanish once the copy is made; verify alone never installs."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent.bundles.install import CrashPoints, install_file, verify_file
from agent.bundles.refusals import Refusal, UpdateRefused
from agent.bundles.store import ModelStore, load_verified
from tests.bundle_kit import flip_member_byte


class AfterCopy(CrashPoints):
    """The installer's step hook, used here to pull the stick right after the copy."""

    def __init__(self, action: Callable[[], None]) -> None:
        super().__init__("")
        self.action = action

    def __call__(self, step: str) -> None:
        if step == "copied":
            self.action()


def stick_copy(kit: dict[str, Any], tmp_path: Path) -> Path:
    stick = tmp_path / "stick" / "model.bundle"
    stick.parent.mkdir()
    shutil.copy(kit["v2"], stick)
    return stick


@pytest.mark.parametrize("change", ["deleted", "tampered", "replaced by another bundle"])
def test_what_happens_to_the_stick_after_the_copy_does_not_matter(
    kit: dict[str, Any], tmp_path: Path, change: str
) -> None:
    stick = stick_copy(kit, tmp_path)
    actions = {
        "deleted": stick.unlink,
        "tampered": lambda: flip_member_byte(kit["v2"], stick, "vae.onnx"),
        "replaced by another bundle": lambda: shutil.copy(kit["v3"], stick),
    }
    store = ModelStore(tmp_path / "state")
    result = install_file(stick, store, kit["trust"], crash=AfterCopy(actions[change]))
    assert result.version == 2
    assert load_verified(store.current_link, kit["trust"]).manifest.model_version == 2


def test_a_stick_gone_before_the_copy_is_refused(kit: dict[str, Any], tmp_path: Path) -> None:
    with pytest.raises(UpdateRefused) as refused:
        install_file(tmp_path / "gone.bundle", ModelStore(tmp_path / "state"), kit["trust"])
    assert refused.value.reason is Refusal.UNREADABLE


def test_verify_installs_nothing(kit: dict[str, Any], tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "state")
    verified = verify_file(kit["v2"], kit["trust"], store=store)
    assert verified.manifest.model_version == 2
    assert store.current_version() is None and store.highest() == 0
    assert list(store.staging.iterdir()) == []
