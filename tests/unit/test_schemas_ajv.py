"""Subscribers' validators accept our schemas: Ajv (the most used JSON Schema validator) in strict mode.

Needs Node.js and ``tools/ajv/node_modules`` (``make setup`` installs both); the test fails rather than
skips without them, so a CI run can never pass without having checked.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from shared.events.schema import SCHEMA_DIR

pytestmark = pytest.mark.unit

AJV_DIR = Path(__file__).resolve().parents[2] / "tools" / "ajv"


def _ajv(schema_dir: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    assert node, "Node.js is missing: run make setup"
    assert (AJV_DIR / "node_modules" / "ajv").is_dir(), "Ajv is missing: run make setup (npm ci in tools/ajv)"
    return subprocess.run(
        [node, str(AJV_DIR / "check-schemas.mjs"), str(schema_dir)], capture_output=True, text=True, timeout=60
    )


def test_ajv_strict_compiles_every_published_schema() -> None:
    done = _ajv(SCHEMA_DIR)
    assert done.returncode == 0, done.stderr
    assert f"{len(list(SCHEMA_DIR.glob('*.schema.json')))} schemas compiled" in done.stdout


def test_ajv_strict_refuses_an_extension_keyword(tmp_path: Path) -> None:
    name = "renja.Signed.v1.schema.json"
    schema = json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))
    (tmp_path / name).write_text(json.dumps({**schema, "x-cloudevents-type": "renja.Signed.v1"}), encoding="utf-8")
    done = _ajv(tmp_path)
    assert done.returncode == 1 and "unknown keyword" in done.stderr
