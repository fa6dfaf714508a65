"""Local RocksDB table files are trusted only when they belong to the changelogs.

Faust writes a table key to RocksDB at once and to its changelog in the background. A worker
killed with kill -9 (OOM, node loss) leaves local files that may hold writes its changelog
never got. Restarted on the same data dir, it would keep them and skip the input messages
they came from (their state is there), so those writes would never reach the changelog: the
next worker to own the partition, which recovers from the changelog, would bill without
them. So the worker trusts its local tables only if the run that wrote them stopped cleanly
(all changelog writes delivered, offsets committed): at start it removes the clean-stop
marker, and writes it again when it exits with code 0 (Kafka Streams' checkpoint file
follows the same rule).

Local files are also worthless when their changelogs are gone: a new cluster (a fresh
embedded broker) or changelog topics deleted. Faust would take them as they are, with their
offsets, dedupe ids and clocks of another run, and skip or misjudge every new event.

Without the marker, or without every changelog topic, the worker discards its local table
files and recovers from the changelogs, as the memory store always does.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

log = logging.getLogger("vasbill.worker")

MARKER = "vasbill-clean-stop"


def open_tables(group_dir: Path, table_dir: Path, *, changelogs_exist: bool = True) -> bool:
    """Before Faust opens ``table_dir`` (under ``group_dir``): discard it unless the last run
    stopped cleanly and its changelog topics exist. Returns True if files were discarded."""
    marker = group_dir / MARKER
    clean = marker.exists()
    marker.unlink(missing_ok=True)
    if not table_dir.exists() or not any(table_dir.iterdir()):
        return False
    if clean and changelogs_exist:
        return False
    reason = ("the last worker on it did not stop cleanly: its local tables may hold writes its changelogs "
              "never got" if not clean else "its changelog topics are not on the cluster (a new cluster, or "
              "topics deleted): its local tables belong to another run")
    log.warning("%s: %s; discarding %s and recovering from the changelogs", group_dir, reason, table_dir)
    shutil.rmtree(table_dir)
    return True


def stopped_cleanly(group_dir: Path) -> None:
    """After Faust stopped with exit code 0: the local tables match the changelogs."""
    group_dir.mkdir(parents=True, exist_ok=True)
    (group_dir / MARKER).touch()
