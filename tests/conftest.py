"""Fixtures shared by the test modules."""

from __future__ import annotations

import pytest
from deps import need


@pytest.fixture(scope="module")
def transfer_queue_on_ray():
    """verl's TransferQueue on a local Ray, once per module (tests/verl_fit_harness.py)."""
    ray = need("ray")
    import transfer_queue as tq
    from omegaconf import OmegaConf

    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    tq.init(OmegaConf.create({"backend": {"SimpleStorage": {"num_data_storage_units": 1}}}))
    yield
    tq.close()
    ray.shutdown()


@pytest.fixture(scope="module")
def fit_data(tmp_path_factory) -> dict:
    """The fit harness's model folder and verl datasets (`verl_fit_harness.fit_data`)."""
    import verl_fit_harness as harness

    return harness.fit_data(tmp_path_factory.mktemp("data"))
