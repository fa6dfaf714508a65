"""Topic names, event and charge schemas, codecs and validation. No Kafka, no Faust."""

from topics.appconfig import AppConfig, AppDirectory, PackageSpec
from topics.charges import Charge, ChargeLine, decimal_text, round_cny
from topics.events import (
    Event,
    ImageCount,
    ImDau,
    ImGroups,
    RecordingEvent,
    RelayTraffic,
    TranscodeUsage,
    UsageEvent,
    VodStorage,
    VodTraffic,
    parse_event,
)
from topics.names import TopicNames
from topics.reasons import CodecError, ConfigError, QuarantineReason, Rejection, VasbillError
from topics.timefmt import BEIJING, format_time, parse_time, to_ms
from topics.validation import check_event, split_message, validate

__all__ = [
    "BEIJING",
    "AppConfig",
    "AppDirectory",
    "Charge",
    "ChargeLine",
    "CodecError",
    "ConfigError",
    "Event",
    "ImDau",
    "ImGroups",
    "ImageCount",
    "PackageSpec",
    "QuarantineReason",
    "RecordingEvent",
    "Rejection",
    "RelayTraffic",
    "TopicNames",
    "TranscodeUsage",
    "UsageEvent",
    "VasbillError",
    "VodStorage",
    "VodTraffic",
    "check_event",
    "decimal_text",
    "format_time",
    "parse_event",
    "parse_time",
    "round_cny",
    "split_message",
    "to_ms",
    "validate",
]
