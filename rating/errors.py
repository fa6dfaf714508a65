"""vasbill's exceptions, one tree (input problems are ``Rejection`` values, not exceptions)::

    VasbillError
    ├── ConfigError     an app config document is invalid: fix it on config.apps / --apps
    ├── CodecError      bytes on an internal topic cannot be decoded: a producer bug
    ├── CatalogError    a price catalog is invalid: ``problems`` lists all, fix the TOML
    └── RatingError     a period cannot be rated (e.g. an unknown pinned catalog)
"""

from __future__ import annotations

from topics.reasons import CodecError, ConfigError, VasbillError


class CatalogError(VasbillError):
    """A catalog file is invalid; every problem is listed in ``problems``."""

    def __init__(self, name: str, problems: list[str]) -> None:
        self.name = name
        self.problems = list(problems)
        super().__init__(f"catalog {name}: " + "; ".join(self.problems))


class RatingError(VasbillError):
    """A period cannot be rated as configured; the message says what to change."""


__all__ = ["CatalogError", "CodecError", "ConfigError", "RatingError", "VasbillError"]
