"""docs/settings.md is generated from the settings classes (issue 15 item 6) and must not go stale."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from deploy import settings_doc
from shared.settings import SECRET_SETTINGS, ServiceSettings

pytestmark = pytest.mark.unit


def test_docs_settings_md_is_what_the_generator_writes() -> None:
    assert settings_doc.OUTPUT.read_text(encoding="utf-8") == settings_doc.render(), (
        "docs/settings.md is stale: run `uv run python -m deploy.settings_doc`"
    )


def test_every_setting_of_every_service_is_listed_and_secrets_are_marked() -> None:
    text = settings_doc.render()
    for cls in [ServiceSettings, *settings_doc.settings_classes().values()]:
        for name in cls.model_fields:
            assert f"`RENJA_{name.upper()}`" in text, name
    for name in SECRET_SETTINGS & set(ServiceSettings.model_fields):
        assert re.search(rf"`RENJA_{name.upper()}` \|.*\| \*\*secret\*\* \|", text), name
    assert "renja-local-development-secret" not in text


def test_check_mode_fails_on_a_stale_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stale = tmp_path / "settings.md"
    monkeypatch.setattr(settings_doc, "OUTPUT", stale)
    stale.write_text("# old\n", encoding="utf-8")
    assert settings_doc.main(["--check"]) == 1
    settings_doc.main([])
    assert settings_doc.main(["--check"]) == 0
