"""The vasbill-configs header: round trip, the largest offsets of several, bad values."""

from __future__ import annotations

from topics import configstamp


def test_offsets_round_trip_and_the_highest_per_partition_wins() -> None:
    assert configstamp.decode(configstamp.encode({0: 12, 3: 4})) == {0: 12, 3: 4}
    assert configstamp.highest([{0: 12, 3: 4}, {0: 9, 1: 2}, {}]) == {0: 12, 1: 2, 3: 4}


def test_a_missing_or_malformed_header_asks_for_nothing() -> None:
    for value in (None, b"", b"{oops", b"[1, 2]", b'{"x": 1}', b'{"0": "many"}'):
        assert configstamp.decode(value) == {}
