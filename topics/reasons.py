"""Why an event was not billed.

Input problems are values, not exceptions: ``validate`` returns a ``Rejection`` and the
caller sends it to the quarantine topic (or ``--quarantine`` file) and counts it. Of the
reasons, ``unprocessable`` is the worker's own: a message it accepted but could not process
(an input no rule foresaw, or a bug), kept with the error class and message.
Exceptions are kept for bugs and bad operator configuration::

    VasbillError                 (rating.errors re-exports the tree)
    ├── ConfigError              an app config document is invalid: fix config.apps
    └── CodecError               bytes that should be ours are not: a producer bug
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class QuarantineReason(StrEnum):
    """Reason codes of SPEC §3; one per rejected event."""

    MALFORMED_JSON = "malformed_json"
    SCHEMA = "schema"
    TOO_LARGE = "too_large"
    FUTURE = "future"
    UNKNOWN_APP = "unknown_app"
    SERVICE_DISABLED = "service_disabled"
    TOO_LATE = "too_late"
    WRONG_TOPIC = "wrong_topic"  # the event's type belongs to another topic
    UNPROCESSABLE = "unprocessable"  # accepted, but the worker could not process it


@dataclass(frozen=True, slots=True)
class Rejection:
    """An event that goes to quarantine: the reason, a human detail and the original text."""

    reason: QuarantineReason
    detail: str
    payload: str
    sdk_app_id: int | None = None
    event_id: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "reason": self.reason.value,
            "detail": self.detail,
            "sdk_app_id": self.sdk_app_id,
            "event_id": self.event_id,
            "payload": self.payload,
        }


class VasbillError(Exception):
    """Root of vasbill's exceptions."""


class ConfigError(VasbillError):
    """An app configuration is invalid. ``problems`` lists every problem found at once;
    the operator corrects the document on ``config.apps`` (or the ``--apps`` file)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))


class CodecError(VasbillError):
    """Bytes on an internal topic could not be decoded: a producer bug, not user input."""
