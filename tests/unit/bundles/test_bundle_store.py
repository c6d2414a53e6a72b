"""The model store: versions, the current/previous links, rollback, prune, the highest version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.bundles.refusals import Refusal, UpdateRefused
from agent.bundles.store import ModelStore, write_atomic


def staged(store: ModelStore, version: int) -> Path:
    path = store.new_staging("test")
    (path / "manifest.json").write_text(json.dumps({"model_version": version}))
    return path


def install(store: ModelStore, version: int) -> None:
    store.commit(staged(store, version), version)
    store.flip(version)
    store.record_highest(version)
    store.prune()


def test_flip_keeps_previous_and_prunes_the_rest(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    assert store.current_version() is None and store.highest() == 0
    for v in (1, 2, 3):
        install(store, v)
    assert store.current_version() == 3 and store.previous_version() == 2
    assert sorted(p.name for p in store.versions.iterdir()) == ["2", "3"]
    assert store.current_link.readlink() == Path("versions/3")  # relative: the dir can move
    assert store.highest() == 3


def test_rollback_goes_back_and_keeps_the_highest(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    install(store, 1)
    install(store, 2)
    assert store.rollback() == (2, 1)
    assert store.current_version() == 1 and store.previous_version() is None
    assert store.highest() == 2 and store.floor() == 2
    with pytest.raises(UpdateRefused) as refused:
        store.rollback()
    assert refused.value.reason is Refusal.NO_PREVIOUS


def test_highest_survives_outside_the_model_store(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    install(store, 5)
    assert store.highest_file.parent == tmp_path and store.models not in store.highest_file.parents
    store.record_highest(3)  # never lowers
    assert ModelStore(tmp_path).highest() == 5


def test_recover_clears_leftovers_but_not_versions(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    install(store, 1)
    staged(store, 2)
    (store.models / ".current.tmp").symlink_to("versions/2")
    store.recover()
    assert list(store.staging.iterdir()) == []
    assert not (store.models / ".current.tmp").is_symlink()
    assert store.current_version() == 1


def test_a_second_installer_is_refused_while_one_holds_the_lock(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    with store.locked(), pytest.raises(UpdateRefused) as refused, store.locked():
        pass
    assert refused.value.reason is Refusal.BUSY


def test_write_atomic_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "f"
    write_atomic(target, b"one")
    write_atomic(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_an_install_during_probation_falls_back_to_the_last_proven_version(
    tmp_path: Path,
) -> None:
    store = ModelStore(tmp_path)
    install(store, 1)
    store.commit(staged(store, 2), 2)
    store.write_marker(2, 1)
    store.flip(2)
    # model 3 arrives while 2 is still on probation: its fallback is 1, the last one proven
    pending = store.read_marker()
    assert pending is not None and pending["previous"] == 1
    store.commit(staged(store, 3), 3)
    store.write_marker(3, pending["previous"])
    store.flip(3)
    store.prune()
    assert sorted(p.name for p in store.versions.iterdir()) == ["1", "2", "3"]  # 1 kept
    store.clear_marker(2)  # a late word about model 2 does not clear model 3's probation
    assert store.read_marker() == {"version": 3, "previous": 1, "boots": 0}
    store.rollback(to=1)
    store.clear_marker(3)
    assert not store.marker_file.exists() and store.current_version() == 1
