from fixtures.broker import broker, embedded_broker  # noqa: F401
from fixtures.worker import pytest_terminal_summary, stack, timer, worker_group  # noqa: F401
