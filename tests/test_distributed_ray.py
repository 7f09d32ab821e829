"""ArchiveActor on a local Ray instance: several processes share one archive."""

from __future__ import annotations

import numpy as np
import pytest
from deps import need

ray = need("ray")

from exit_verl import TaskArchive  # noqa: E402
from exit_verl.distributed import ArchiveActor  # noqa: E402


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield
    ray.shutdown()


@ray.remote(num_cpus=0.5)
def rollout_worker(worker: int, rounds: int) -> list[int]:
    archive = ray.get_actor("shared-archive")
    rng = np.random.default_rng(worker)
    mine: list[int] = []
    for r in range(rounds):
        payloads = [f"w{worker}-r{r}-{i}".encode() for i in range(16)]
        ids = ray.get(
            archive.add.remote(
                payloads, rng.random(16), embeddings=rng.normal(size=(16, 8)).astype(np.float32)
            )
        )
        mine.extend(ids.tolist())
        drawn, got = ray.get(archive.sample_with_payloads.remote(4, step=0))
        assert len(drawn) == len(got) == 4
        ray.get(archive.update_scores.remote(ids[:4], np.full(4, 10.0 + worker)))
    return mine


def test_workers_share_one_archive(local_ray, tmp_path) -> None:
    archive = ArchiveActor.remote(10_000, embedding_dim=8, metric="l2", name="shared-archive")
    per_worker = ray.get([rollout_worker.remote(w, 5) for w in range(4)])
    every = [i for ids in per_worker for i in ids]
    assert len(every) == len(set(every)) == 4 * 5 * 16  # no id handed out twice
    assert ray.get(archive.size.remote()) == len(every)
    assert sorted(ray.get(archive.ids.remote()).tolist()) == sorted(every)
    payloads = ray.get(archive.get.remote(per_worker[2]))
    assert all(p.startswith(b"w2-") for p in payloads)
    scores = ray.get(archive.info.remote(per_worker[3][:4]))["score"]
    np.testing.assert_array_equal(scores, np.full(4, 13.0))
    novelty = ray.get(archive.novelty.remote(np.zeros((3, 8), np.float32), 4))
    assert novelty.shape == (3,) and np.isfinite(novelty).all()

    path = tmp_path / "shared.snap"
    ray.get(archive.save.remote(str(path)))
    local = TaskArchive.load(path)
    assert local.ids().tolist() == sorted(every)
    restored = ArchiveActor.remote(snapshot=str(path))
    assert ray.get(restored.to_bytes.remote()) == local.to_bytes()


@ray.remote(num_cpus=0)
def evicting_writer(name: str, rounds: int) -> int:
    archive = ray.get_actor(name)
    rng = np.random.default_rng(0)
    for r in range(rounds):
        scores = rng.random(8) + r  # every batch outranks the residents: all are evicted
        payloads = [f"id-{8 + 8 * r + i}".encode() for i in range(8)]  # their ids
        ray.get(archive.add.remote(payloads, scores))
    return rounds


@ray.remote(num_cpus=0)
def payload_reader(name: str, rounds: int) -> list[str]:
    archive = ray.get_actor(name)
    errors = []
    for _ in range(rounds):
        try:
            ids, payloads = ray.get(archive.sample_with_payloads.remote(16, step=0))
        except ray.exceptions.RayTaskError as e:
            errors.append(repr(e.as_instanceof_cause()))
            continue
        for i, p in zip(ids.tolist(), payloads, strict=True):
            if p != f"id-{i}".encode():
                errors.append(f"id {i} came with payload {p!r}")
    return errors


def test_sample_with_payloads_is_atomic_under_concurrent_eviction(local_ray) -> None:
    """With max_concurrency > 1 the actor runs calls on several threads: an eviction between
    the draw and the read must not be possible."""
    name = "evicted-archive"
    archive = ArchiveActor.remote(8, name=name, max_concurrency=4)
    ray.get(archive.add.remote([f"id-{i}".encode() for i in range(8)], np.full(8, -1.0)))
    writer = evicting_writer.remote(name, 300)  # one writer: ids 8, 9, ... in order
    readers = [payload_reader.remote(name, 400) for _ in range(2)]
    ray.get(writer)
    errors = [e for r in ray.get(readers) for e in r]
    assert not errors, f"{len(errors)} failed reads, first: {errors[0]}"


def test_errors_cross_the_actor_boundary(local_ray) -> None:
    with pytest.raises(ValueError):
        ArchiveActor.remote(0)
    with pytest.raises(ValueError):
        ArchiveActor.remote()
    archive = ArchiveActor.remote(10)
    with pytest.raises(KeyError):
        try:
            ray.get(archive.update_scores.remote([99], [1.0]))
        except ray.exceptions.RayTaskError as e:
            raise e.as_instanceof_cause() from None
    assert ray.get(archive.size.remote()) == 0
