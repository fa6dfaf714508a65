"""Shared fixtures. The factories themselves live in ``tests/fixtures/factories.py`` (plain
functions, importable as ``fixtures.factories``); these fixtures bind them to a test."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

# Test the checkout itself: its root goes first on sys.path, so ``rating``, ``topics`` and
# ``vasbill`` import from this tree even when the editable install in the venv is stale
# (an editable install made while ``rating`` had no __init__.py maps it as a namespace
# package, and importlib.resources then cannot find rating/catalogs).
_ROOT = str(Path(__file__).resolve().parents[1])
if sys.path[0] != _ROOT:
    sys.path.insert(0, _ROOT)

from fixtures.factories import APP, RateRun, make_app, run_rate  # noqa: E402


@pytest.fixture
def rate(tmp_path: Path) -> Callable[..., RateRun]:
    """``rate(apps, events, *extra_args, use_subprocess=False)``: run ``vasbill rate`` in tmp_path."""

    def run(apps: Any, events: Any, *extra_args: str, **kw: Any) -> RateRun:
        return run_rate(tmp_path, apps, events, *extra_args, **kw)

    return run


@pytest.fixture
def app_doc() -> Callable[..., dict[str, Any]]:
    """``app_doc(**overrides)``: an app config document (SPEC §4) for ``APP``."""
    return make_app


@pytest.fixture
def app_id() -> int:
    return APP
