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
