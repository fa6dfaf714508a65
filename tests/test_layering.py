"""Layers point one way (SPEC §1): topics/ <- rating/ <- workers/ <- the CLI. The pure core
imports no Kafka or Faust, and never reaches up into workers/ or vasbill/."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
KAFKA_AND_FAUST = ("faust", "aiokafka", "kafka", "mode")


def test_core_imports_no_kafka_or_faust() -> None:
    code = (
        "import json, sys, pkgutil, importlib\n"
        "import topics, rating, rating.biller, rating.pricers\n"
        "for pkg in (topics, rating):\n"
        "    for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        importlib.import_module(info.name)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    loaded = set(json.loads(proc.stdout))
    assert {"topics", "rating", "rating.biller", "rating.pricers", "rating.catalog"} <= loaded
    leaked = sorted(m for m in loaded if m.split(".")[0] in (*KAFKA_AND_FAUST, "workers", "vasbill"))
    assert leaked == []


def _imports(path: Path) -> list[str]:
    """Every module an import statement of ``path`` names (at any depth of the file)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) in (
            "import_module", "__import__"
        ) and node.args and isinstance(node.args[0], ast.Constant):
            found.append(str(node.args[0].value))
    return found


CORE_FILES = sorted(p for layer in ("topics", "rating") for p in (ROOT / layer).rglob("*.py"))


def test_the_scan_sees_the_core() -> None:
    names = {p.relative_to(ROOT).as_posix() for p in CORE_FILES}
    assert {"topics/validation.py", "rating/biller.py", "rating/pricers/relay.py", "rating/catalog.py"} <= names


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_core_file_does_not_import_upper_layers(path: Path) -> None:
    bad = [m for m in _imports(path) if m.split(".")[0] in ("workers", "vasbill", *KAFKA_AND_FAUST)]
    assert bad == []


@pytest.mark.parametrize("path", sorted((ROOT / "topics").rglob("*.py")),
                         ids=lambda p: p.relative_to(ROOT).as_posix())
def test_topics_does_not_import_rating(path: Path) -> None:
    assert [m for m in _imports(path) if m.split(".")[0] == "rating"] == []


def test_the_scanner_finds_nested_imports(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import os\n"
        "def f():\n"
        "    import faust.app\n"
        "    from workers.stages import x\n"
        "    importlib.import_module('aiokafka')\n"
    )
    assert _imports(sample) == ["os", "faust.app", "workers.stages", "aiokafka"]
