"""The one reader of app configuration documents (SPEC §4), for every place that reads them:
``vasbill rate --apps``, the worker's ``config.apps`` reader, ``vasbill produce``, the
demo and the benchmark.

``topics.appconfig.AppConfig.from_dict`` checks a document on its own; a ``catalog`` pin
must also name a shipped price catalog, which only ``rating`` knows (topics/ imports
nothing from rating/). A pin to an unknown catalog would otherwise be accepted and fail
when a period of that app is rated.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from rating.catalog import builtin_catalogs
from topics.appconfig import AppConfig, parse_app_documents
from topics.reasons import ConfigError


@lru_cache(maxsize=1)
def catalog_names() -> frozenset[str]:
    """The names of the shipped catalogs (``rating/catalogs/*.toml``)."""
    return frozenset(c.name for c in builtin_catalogs())


def _catalog_problem(document: Any) -> str | None:
    if not isinstance(document, dict):
        return None
    name = document.get("catalog")
    if type(name) is not str or name in catalog_names():
        return None  # null, or a wrong type that from_dict reports
    known = ", ".join(sorted(catalog_names()))
    return f"catalog: no catalog named {name[:130]!r} (known: {known})"


def read_app_config(document: Any) -> AppConfig:
    """Validate one app config document; raise ``ConfigError`` with every problem."""
    problem = _catalog_problem(document)
    try:
        config = AppConfig.from_dict(document)
    except ConfigError as exc:
        problems = [p for p in exc.problems if not (problem and p.startswith("catalog "))]
        raise ConfigError(problems + [problem] if problem else problems) from None
    if problem:
        raise ConfigError([problem])
    return config


def read_app_documents(text: str) -> list[AppConfig]:
    """App configs from a JSON array or JSON Lines (``--apps``), each by ``read_app_config``."""
    return parse_app_documents(text, read_app_config)
