"""Snapshots from Python: save/load with paths, pickle, continuation through the bindings, and
damaged or crafted files raising ValueError with their message. The format itself (every cut
and bit flip, declared lengths, older versions, forgotten lineage) is tested in the crate."""

import os
import pickle
import zlib

import numpy as np
import pytest

from exit_verl import TaskArchive


def _populated(seed=0, prioritization="rank", admission="always"):
    rng = np.random.default_rng(seed)
    arc = TaskArchive(
        60,
        embedding_dim=4,
        prioritization=prioritization,
        staleness_coef=0.3,
        temperature=0.7,
        admission=admission,
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


def test_save_load_continues_identically(tmp_path):
    arc = _populated(prioritization="softmax", admission="not_below_min")
    path = tmp_path / "arc.snap"
    arc.save(path)  # a Path
    assert TaskArchive.load(str(path)).to_bytes() == arc.to_bytes()  # and a str
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
    capacity_dependent = ("memory_bytes", "lineage_bytes")  # allocation sizes, not state
    for key, value in arc.stats().items():
        assert key in capacity_dependent or loaded.stats()[key] == value, key
    assert loaded.config() == arc.config()
    assert os.listdir(tmp_path) == ["arc.snap"]
    assert pickle.loads(pickle.dumps(arc)).to_bytes() == arc.to_bytes()


def test_damaged_foreign_and_missing_files_raise_value_error(tmp_path):
    good = _populated().to_bytes()
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 4
    bad_version = bytearray(good)
    bad_version[8] = 99
    for data in (
        good[: len(good) // 2],
        good[:5],
        bytes(flipped),
        bytes(bad_version),
        b"PK\x03\x04" + good[4:],
        pickle.dumps({"a": 1}),
    ):
        with pytest.raises(ValueError):
            TaskArchive.from_bytes(data)
    with pytest.raises(ValueError, match="version"):
        TaskArchive.from_bytes(bytes(bad_version))
    path = tmp_path / "junk.snap"
    path.write_bytes(b"\x00" * 1000)
    with pytest.raises(ValueError):
        TaskArchive.load(path)
    with pytest.raises(ValueError):
        TaskArchive.load(tmp_path / "missing.snap")
    # memoryview and bytearray are read like bytes.
    assert TaskArchive.from_bytes(memoryview(good)).to_bytes() == good
    assert TaskArchive.from_bytes(bytearray(good)).to_bytes() == good


def _resealed(data: bytes) -> bytes:
    """The file with its trailer (CRC-32 and length) recomputed: checks past it are reached."""
    body = data[:-12]
    return body + zlib.crc32(body).to_bytes(4, "little") + len(data).to_bytes(8, "little")


def _with_word(data: bytes, word: int, value: int) -> bytes:
    at = 16 + 8 * word
    return data[:at] + value.to_bytes(8, "little") + data[at + 8 :]


def test_crafted_files_with_a_valid_checksum_are_refused():
    # Header words: 1 embedding_dim, 11 next_id, 17 lineage floor.
    empty = TaskArchive(4, embedding_dim=3).to_bytes()
    wide = _resealed(_with_word(empty, 1, 2**61))  # no rows, so the sizes still add up
    with pytest.raises(ValueError, match="invalid configuration"):
        TaskArchive.from_bytes(wide)
    far = _resealed(_with_word(_with_word(empty, 11, 2**64 - 2), 17, 2**64 - 2))
    with pytest.raises(ValueError, match="id limit"):
        TaskArchive.from_bytes(far)
    # At the limit it loads, and the add that would pass it fails and changes nothing.
    edge = TaskArchive.from_bytes(_resealed(_with_word(_with_word(empty, 11, 2**63), 17, 2**63)))
    before = edge.to_bytes()
    with pytest.raises(ValueError, match="id space"):
        edge.add([b"x"], [1.0], embeddings=np.ones((1, 3)))
    assert edge.to_bytes() == before
