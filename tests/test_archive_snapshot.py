"""Snapshots: exact continuation after save/load, and damaged files rejected."""

import os
import pickle

import numpy as np
import pytest

from exit_verl import TaskArchive


def _populated(seed=0, prioritization="rank"):
    rng = np.random.default_rng(seed)
    arc = TaskArchive(
        60,
        embedding_dim=4,
        prioritization=prioritization,
        staleness_coef=0.3,
        temperature=0.7,
        seed=seed,
    )
    for step in range(40):
        parents = [-1, step] if step else None
        arc.add(
            [f"p{step}".encode(), "q" * step],
            rng.random(2),
            parents=parents,
            embeddings=rng.normal(size=(2, 4)),
            step=step,
        )
        arc.update_scores(arc.sample(3, step=step), rng.random(3))
    arc.remove(arc.ids()[:3])
    return arc


@pytest.mark.parametrize("prioritization", ["rank", "proportional"])
def test_save_load_continues_identically(tmp_path, prioritization):
    arc = _populated(prioritization=prioritization)
    path = tmp_path / "arc.snap"
    arc.save(path)
    loaded = TaskArchive.load(path)
    assert loaded.to_bytes() == arc.to_bytes()
    for key, value in arc.info(arc.ids()).items():
        np.testing.assert_array_equal(loaded.info(arc.ids())[key], value)
    q = np.ones((2, 4), dtype=np.float32)
    np.testing.assert_array_equal(loaded.novelty(q), arc.novelty(q))
    for step in range(40, 60):
        assert loaded.sample(9, step=step).tolist() == arc.sample(9, step=step).tolist()
        new = [b"n"], [0.9], np.ones((1, 4))
        assert (
            loaded.add(new[0], new[1], embeddings=new[2], step=step).tolist()
            == arc.add(new[0], new[1], embeddings=new[2], step=step).tolist()
        )
    assert os.listdir(tmp_path) == ["arc.snap"]
    assert pickle.loads(pickle.dumps(arc)).to_bytes() == arc.to_bytes()


def test_truncated_flipped_and_foreign_files_raise_value_error(tmp_path):
    good = _populated().to_bytes()
    rng = np.random.default_rng(0)
    cuts = sorted(
        {0, 8, 12, 16, 160, len(good) - 12, len(good) - 1, *rng.integers(0, len(good), 50)}
    )
    for cut in cuts:
        with pytest.raises(ValueError):
            TaskArchive.from_bytes(good[:cut])
    for pos in rng.integers(0, len(good), 200):
        bad = bytearray(good)
        bad[pos] ^= 1 << int(rng.integers(0, 8))
        with pytest.raises(ValueError):
            TaskArchive.from_bytes(bytes(bad))
    bad_version = bytearray(good)
    bad_version[8] = 99
    for data in (bytes(bad_version), b"PK\x03\x04" + good[4:], pickle.dumps({"a": 1})):
        with pytest.raises(ValueError):
            TaskArchive.from_bytes(data)
    path = tmp_path / "junk.snap"
    path.write_bytes(b"\x00" * 1000)
    with pytest.raises(ValueError):
        TaskArchive.load(path)
    with pytest.raises(ValueError):
        TaskArchive.load(tmp_path / "missing.snap")


def test_declared_huge_lengths_do_not_allocate():
    good = bytearray(_populated().to_bytes())
    # next_id lives at header word 11 (after magic, version and header length).
    good[16 + 11 * 8 : 16 + 12 * 8] = (2**62).to_bytes(8, "little")
    with pytest.raises(ValueError, match="length"):
        TaskArchive.from_bytes(bytes(good))
