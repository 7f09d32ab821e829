"""`write_atomic`: the target is replaced whole, through no symlink, by a fresh temp file."""

from __future__ import annotations

import os

import pytest

from exit_verl.durable import write_atomic


def test_replaces_the_file_and_leaves_no_temp(tmp_path) -> None:
    target = tmp_path / "state.json"
    target.write_bytes(b"old")
    write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]


def test_a_symlink_at_the_target_is_replaced_not_followed(tmp_path) -> None:
    outside = tmp_path / "outside"
    outside.write_bytes(b"precious")
    target = tmp_path / "state.json"
    target.symlink_to(outside)
    write_atomic(target, b"new")
    assert outside.read_bytes() == b"precious"
    assert not target.is_symlink() and target.read_bytes() == b"new"


def test_planted_temp_names_are_not_used(tmp_path) -> None:
    """Symlinks at every name the old scheme used (`.name.tmp`) lead nowhere."""
    outside = tmp_path / "outside"
    outside.write_bytes(b"precious")
    target = tmp_path / "state.json"
    for name in (".state.json.tmp", "state.json.tmp"):
        (tmp_path / name).symlink_to(outside)
    write_atomic(target, b"new")
    assert outside.read_bytes() == b"precious" and target.read_bytes() == b"new"


def test_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch) -> None:
    target = tmp_path / "state.json"
    target.write_bytes(b"old")

    def fail(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(target, b"new")
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json"]
