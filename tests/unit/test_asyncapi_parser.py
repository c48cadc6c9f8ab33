"""The bundled AsyncAPI document is what the official AsyncAPI parser accepts: no error diagnostic, every
``$ref`` internal. Needs Node.js and ``tools/asyncapi/node_modules`` (``make setup`` installs both); the
tests fail rather than skip without them, so a CI run can never pass without having checked.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from shared.events.asyncapi import ASYNCAPI_FILE, BUNDLED_FILE

pytestmark = pytest.mark.unit

TOOL_DIR = Path(__file__).resolve().parents[2] / "tools" / "asyncapi"


def _parse(document: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    assert node, "Node.js is missing: run make setup"
    assert (TOOL_DIR / "node_modules" / "@asyncapi" / "parser").is_dir(), (
        "@asyncapi/parser is missing: run make setup (npm ci in tools/asyncapi)"
    )
    return subprocess.run(
        [node, str(TOOL_DIR / "check-asyncapi.mjs"), str(document)], capture_output=True, text=True, timeout=120
    )


def test_the_parser_accepts_the_bundled_document() -> None:
    done = _parse(BUNDLED_FILE)
    assert done.returncode == 0, done.stderr
    assert "valid (AsyncAPI 3.0.0, 14 messages" in done.stdout


def test_the_parser_refuses_a_dangling_ref(tmp_path: Path) -> None:
    text = BUNDLED_FILE.read_text(encoding="utf-8")
    assert "$ref: '#/components/schemas/Actor'" in text
    broken = tmp_path / "asyncapi.yaml"
    broken.write_text(text.replace("'#/components/schemas/Actor'", "'#/components/schemas/Nobody'"), encoding="utf-8")
    done = _parse(broken)
    assert done.returncode == 1
    assert "invalid-ref" in done.stderr and "#/components/schemas/Nobody" in done.stderr


def test_the_parser_refuses_a_document_that_is_not_self_contained() -> None:
    done = _parse(ASYNCAPI_FILE)  # references the schema files: fine for people, not for the bundle's readers
    assert done.returncode == 1
    assert "not self-contained: $ref to " in done.stderr and "renja.Signed.v1.schema.json" in done.stderr
