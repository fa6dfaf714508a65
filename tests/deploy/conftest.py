"""Fixtures of the deploy/ tests; the helpers are in ``deploy_helpers``. (promtool and prometheus
are looked up inside the tests with ``deploy_helpers.binary``: missing, the test FAILS.)"""

from __future__ import annotations

from fixtures.broker import broker, embedded_broker  # noqa: F401
