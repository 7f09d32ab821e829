"""A request router for the rollout servers that does not import verl or torch.

verl routes every generation request through one Ray actor (the load balancer). Its own
balancer lives in a verl module, so its process imports verl, torch and transformers, about
0.9 GiB of memory to keep a few counters. verl loads a router from a YAML file instead
(`actor_rollout_ref.rollout.router_config_path`, verl's router plugin hook); this one has the
same routing as verl's default (a request id sticks to its server, new ids go to the server with
the fewest requests in flight) and its process holds only Ray.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from pathlib import Path
from typing import Any

CONFIG = Path(__file__).with_name("router.yaml")
STICKY_IDS = 10000


class LeastInflightRouter:
    """Implements verl's `RequestLoadBalancer` protocol (verl.workers.rollout.router)."""

    def __init__(self, servers: dict[str, Any], config: dict | None = None) -> None:
        self._servers: dict[str, Any] = dict(servers)
        self._inflight: dict[str, int] = {sid: 0 for sid in servers}
        self._sticky: OrderedDict[str, str] = OrderedDict()

    def acquire_server(self, request_id: str, **extra: Any) -> tuple[str, Any]:
        server_id = self._sticky.get(request_id)
        if server_id not in self._inflight:
            if not self._inflight:
                raise RuntimeError("No available servers in load balancer")
            least = min(self._inflight.values())
            server_id = random.choice([s for s, n in self._inflight.items() if n == least])
        self._sticky[request_id] = server_id
        self._sticky.move_to_end(request_id)
        while len(self._sticky) > STICKY_IDS:
            self._sticky.popitem(last=False)
        self._inflight[server_id] += 1
        return server_id, self._servers[server_id]

    def release_server(self, server_id: str, request_id: str | None = None) -> None:
        if self._inflight.get(server_id, 0) > 0:
            self._inflight[server_id] -= 1

    def require_acquire_fields(self) -> list[str]:
        return []

    def require_release_fields(self) -> list[str]:
        return []

    def add_servers(self, servers: dict[str, Any]) -> None:
        for server_id, handle in servers.items():
            self._servers[server_id] = handle
            self._inflight[server_id] = 0

    def remove_servers(self, server_ids: list[str]) -> None:
        for server_id in server_ids:
            self._servers.pop(server_id, None)
            self._inflight.pop(server_id, None)

    def get_inflight_count(self, server_id: str) -> int:
        return self._inflight.get(server_id, 0)

    def get_all_servers(self) -> list[str]:
        return list(self._inflight)

    def get_total_inflight(self) -> int:
        return sum(self._inflight.values())

    def clear_sticky_cache(self) -> dict:
        cleared = len(self._sticky)
        self._sticky.clear()
        return {"cleared_entries": cleared, "server_loads": dict(self._inflight)}

    def get_status(self) -> dict:
        return {
            "servers": dict(self._inflight),
            "total_inflight": self.get_total_inflight(),
            "active_servers": len(self._inflight),
            "registered_handles": list(self._servers),
        }
