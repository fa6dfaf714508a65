"""Web views on the worker's web port (loopback by default): health, readiness, accounts."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any, cast

from workers.kv import BatchKV

if TYPE_CHECKING:
    from workers.app import VasbillWorker


def is_ready(worker: VasbillWorker) -> tuple[bool, dict[str, Any]]:
    app = worker.app
    recovery = cast(Any, app.tables).recovery  # the table manager's recovery service (not in its type)
    detail = {
        "configs_synced": worker.configs.synced.is_set(),
        "apps": len(worker.configs.directory),
        "assigned_partitions": len(app.consumer.assignment()) if app.consumer else 0,
        "rebalancing": bool(app.rebalancing),
        "recovered": recovery.completed.is_set(),
        "ingest": worker.ingest is not None and worker.ingest.ready.is_set(),
    }
    ready = (detail["configs_synced"] and not detail["rebalancing"] and detail["recovered"]
             and detail["assigned_partitions"] > 0 and detail["ingest"] and not worker.failure)
    return bool(ready), detail


def register_views(worker: VasbillWorker) -> None:
    app = worker.app

    @app.page("/healthz")
    async def healthz(web: Any, request: Any) -> Any:
        if worker.failure:
            return web.json({"status": "failed", "reason": worker.failure}, status=500)
        return web.json({"status": "alive"})

    @app.page("/metrics")
    async def metrics(web: Any, request: Any) -> Any:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        body = generate_latest(worker.metrics.registry)
        return web.bytes(body, content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/accounts/{account_id}/usage")
    @app.table_route(table=worker.table2, match_info="account_id")
    async def usage(web: Any, request: Any, account_id: str) -> Any:
        """Month-to-date usage and provisional amounts per item (``?month=YYYY-MM``, default:
        the month of the billing clock), served by the worker that owns the account."""
        month = request.query.get("month") or _clock_month(worker)
        if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
            return web.json({"error": "month must be YYYY-MM"}, status=400)
        from workers.app import TableStore

        kv = BatchKV(TableStore(worker.table2))
        return web.json(worker.stage2.month_to_date(kv, account_id, month))

    @app.page("/accounts/{account_id}/packages")
    @app.table_route(table=worker.table2, match_info="account_id")
    async def packages(web: Any, request: Any, account_id: str) -> Any:
        from workers.app import TableStore

        kv = BatchKV(TableStore(worker.table2))
        items = worker.stage2.packages(kv, account_id, int(time.time() * 1000))
        return web.json({"account_id": account_id, "packages": items})

    @app.page("/readyz")
    async def readyz(web: Any, request: Any) -> Any:
        ready, detail = is_ready(worker)
        return web.json({"ready": ready, **detail}, status=200 if ready else 503)


def _clock_month(worker: VasbillWorker) -> str:
    from rating.periods import month_of

    ms = worker.clock_ms or int(time.time() * 1000)
    return month_of(ms).key
