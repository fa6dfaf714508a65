"""Web views on the worker's web port (loopback by default): health, readiness, accounts."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workers.app import VasbillWorker


def is_ready(worker: VasbillWorker) -> tuple[bool, dict[str, Any]]:
    app = worker.app
    recovery = app.tables.recovery
    detail = {
        "configs_synced": worker.configs.synced.is_set(),
        "apps": len(worker.configs.directory),
        "assigned_partitions": len(app.consumer.assignment()) if app.consumer else 0,
        "rebalancing": bool(app.rebalancing),
        "recovered": recovery.completed.is_set(),
    }
    ready = (detail["configs_synced"] and not detail["rebalancing"] and detail["recovered"]
             and detail["assigned_partitions"] > 0)
    return bool(ready), detail


def register_views(worker: VasbillWorker) -> None:
    app = worker.app

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        return web.json({"status": "alive"})

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        body = generate_latest(worker.metrics.registry)
        return web.bytes(body, content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        ready, detail = is_ready(worker)
        return web.json({"ready": ready, **detail}, status=200 if ready else 503)
