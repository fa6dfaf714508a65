"""Meters by event type: which meter folds which usage event."""

from __future__ import annotations

from collections.abc import Mapping

from rating.meters.bandwidth import BucketMeter
from rating.meters.base import Meter, State, Summary
from rating.meters.concurrency import ConcurrencyMeter
from rating.meters.im import ImMeter
from rating.meters.storage import StorageMeter
from rating.meters.sums import MODERATION, SNAPSHOT, TRANSCODE, VOD_TRAFFIC, SumMeter

RECORDING = ConcurrencyMeter()
RELAY = BucketMeter()
VOD_STORAGE = StorageMeter()
IM = ImMeter()

METERS: Mapping[str, Meter] = {
    m.family: m for m in (RECORDING, RELAY, TRANSCODE, SNAPSHOT, MODERATION, VOD_STORAGE, VOD_TRAFFIC, IM)
}

METER_OF_TYPE: Mapping[str, Meter] = {
    "relay.traffic": RELAY,
    "recording.start": RECORDING,
    "recording.heartbeat": RECORDING,
    "recording.stop": RECORDING,
    "transcode.usage": TRANSCODE,
    "snapshot.count": SNAPSHOT,
    "moderation.count": MODERATION,
    "vod.storage": VOD_STORAGE,
    "vod.traffic": VOD_TRAFFIC,
    "im.dau": IM,
    "im.groups": IM,
}

__all__ = [
    "IM",
    "METERS",
    "METER_OF_TYPE",
    "RECORDING",
    "RELAY",
    "VOD_STORAGE",
    "BucketMeter",
    "ConcurrencyMeter",
    "ImMeter",
    "Meter",
    "State",
    "StorageMeter",
    "SumMeter",
    "Summary",
]
