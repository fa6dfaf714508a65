"""RocksDB table files are kept only after a clean stop (``workers.local_tables``)."""

from __future__ import annotations

from pathlib import Path

from workers.local_tables import MARKER, open_tables, stopped_cleanly


def _tables(data_dir: Path) -> Path:
    tables = data_dir / "v1" / "tables"
    (tables / "stage2-0.db").mkdir(parents=True)
    (tables / "stage2-0.db" / "000001.log").write_bytes(b"local writes")
    return tables


def test_tables_of_a_run_that_did_not_stop_cleanly_are_discarded(tmp_path: Path) -> None:
    tables = _tables(tmp_path)
    assert open_tables(tmp_path, tables) is True
    assert not tables.exists()


def test_tables_of_a_clean_stop_are_kept_and_the_marker_is_taken_back(tmp_path: Path) -> None:
    tables = _tables(tmp_path)
    stopped_cleanly(tmp_path)
    assert open_tables(tmp_path, tables) is False
    assert (tables / "stage2-0.db" / "000001.log").read_bytes() == b"local writes"
    assert not (tmp_path / MARKER).exists(), "a crash of this run must not find the marker"
    assert open_tables(tmp_path, tables) is True  # this run then died without stopping cleanly


def test_tables_whose_changelogs_are_not_on_the_cluster_are_discarded_even_after_a_clean_stop(
        tmp_path: Path) -> None:
    tables = _tables(tmp_path)
    stopped_cleanly(tmp_path)
    assert open_tables(tmp_path, tables, changelogs_exist=False) is True
    assert not tables.exists()


def test_a_first_start_has_nothing_to_discard(tmp_path: Path) -> None:
    assert open_tables(tmp_path / "new", tmp_path / "new" / "v1" / "tables") is False
