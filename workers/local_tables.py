"""Local RocksDB table files are trusted only after a clean stop.

Faust writes a table key to RocksDB at once and to its changelog in the background. A worker
killed with kill -9 (OOM, node loss) leaves local files that hold writes its changelog never
got. Restarted on the same data dir, it keeps them and skips the input messages they came
from (their state is there), so those writes never reach the changelog: the next worker to
own the partition, which recovers from the changelog, would bill without them. Faust also
replays changelog messages sent but not yet acknowledged over newer local values.

So the worker trusts its local tables only if the run that wrote them stopped cleanly (all
changelog writes delivered, offsets committed): at start it removes the clean-stop marker,
and writes it again when it exits with code 0. Without the marker it discards the local
table files and recovers from the changelogs, as the memory store always does.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

log = logging.getLogger("vasbill.worker")

MARKER = "vasbill-clean-stop"


def open_tables(data_dir: Path, table_dir: Path) -> bool:
    """Before Faust opens ``table_dir``: discard it unless the last run stopped cleanly.
    Returns True if local table files were discarded."""
    marker = data_dir / MARKER
    clean = marker.exists()
    marker.unlink(missing_ok=True)
    if clean or not table_dir.exists() or not any(table_dir.iterdir()):
        return False
    log.warning("the last worker on %s did not stop cleanly: its local tables may hold writes its "
                "changelogs never got; discarding %s and recovering from the changelogs", data_dir, table_dir)
    shutil.rmtree(table_dir)
    return True


def stopped_cleanly(data_dir: Path) -> None:
    """After Faust stopped with exit code 0: the local tables match the changelogs."""
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / MARKER).touch()
