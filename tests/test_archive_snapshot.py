"""Snapshots: exact continuation after save/load, and damaged files rejected."""

import os
import pickle
import zlib
from pathlib import Path

import numpy as np
import pytest

from exit_verl import TaskArchive

HEADER_WORDS = 21  # u64 words in a version-5 header
VERSION = 5


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


@pytest.mark.parametrize(
    ("prioritization", "admission"),
    [("rank", "always"), ("proportional", "always"), ("softmax", "not_below_min")],
)
def test_save_load_continues_identically(tmp_path, prioritization, admission):
    arc = _populated(prioritization=prioritization, admission=admission)
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
    capacity_dependent = ("memory_bytes", "lineage_bytes")  # allocation sizes, not state
    for key, value in arc.stats().items():
        assert key in capacity_dependent or loaded.stats()[key] == value, key
    assert loaded.config() == arc.config()
    assert os.listdir(tmp_path) == ["arc.snap"]
    assert pickle.loads(pickle.dumps(arc)).to_bytes() == arc.to_bytes()


def test_truncated_flipped_and_foreign_files_raise_value_error(tmp_path):
    good = _populated().to_bytes()
    rng = np.random.default_rng(0)
    header_fields = [0, 8, 12, *(16 + 8 * i for i in range(HEADER_WORDS + 1))]
    cuts = sorted({*header_fields, len(good) - 12, len(good) - 1, *rng.integers(0, len(good), 100)})
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
    good = _populated().to_bytes()
    # Header words (after magic, version and header length): 1 embedding_dim, 11 next_id,
    # 12 residents, 13 payload bytes, 17 lineage floor, 18 pinned lineage records.
    for word in (1, 11, 12, 13, 17, 18):
        for value in (2**62, 2**40, 2**64 - 1):
            bad = bytearray(good)
            bad[16 + word * 8 : 16 + (word + 1) * 8] = value.to_bytes(8, "little")
            with pytest.raises(ValueError):
                TaskArchive.from_bytes(bytes(bad))


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


@pytest.mark.parametrize(
    ("name", "version"),
    [
        ("prop_emb.snap", 1),
        ("pinned_v2.snap", 2),
        ("softmax_v3.snap", 3),
        ("softmax_v4.snap", 4),
        ("proportional_v4.snap", 4),
    ],
)
def test_older_snapshot_versions_still_load(tmp_path, name, version):
    corpus = Path(__file__).parent.parent / "rust/exit-archive/fuzz/corpus/snapshot_load"
    old = corpus / name
    assert old.read_bytes()[8:12] == version.to_bytes(4, "little")
    arc = TaskArchive.load(old)
    assert len(arc) > 0
    if version < 3:
        assert arc.stats()["rejected"] == 0 and arc.config()["admission"] == "always"
    arc.save(tmp_path / "new.snap")
    data = (tmp_path / "new.snap").read_bytes()
    assert data[8:12] == VERSION.to_bytes(4, "little")
    again = TaskArchive.from_bytes(data)
    assert again.ids().tolist() == arc.ids().tolist()
    assert again.get(arc.ids()) == arc.get(arc.ids())
    np.testing.assert_array_equal(again.embeddings(arc.ids()), arc.embeddings(arc.ids()))


def test_forgotten_lineage_survives_save_and_load(tmp_path):
    arc = TaskArchive(3, seed=2)
    ids = arc.add([b"a", b"b", b"c"], [9.0, 1.0, 2.0])
    child = arc.add([b"d"], [3.0], parents=[ids[0]], step=1)  # evicts id 1
    assert arc.forget_lineage() == 4
    with pytest.raises(KeyError):
        arc.lineage([1])  # evicted and below the floor: forgotten
    arc.save(tmp_path / "a.snap")
    back = TaskArchive.load(tmp_path / "a.snap")
    for key, values in arc.lineage([0, 2, int(child[0])]).items():
        np.testing.assert_array_equal(back.lineage([0, 2, int(child[0])])[key], values)
    assert back.to_bytes() == arc.to_bytes()
    grandchild = back.add([b"e"], [4.0], parents=[int(child[0])], step=2)
    assert back.lineage(grandchild)["depth"][0] == 2
    with pytest.raises(KeyError):
        back.add([b"f"], [1.0], parents=[1])
