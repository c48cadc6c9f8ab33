"""Settings of the documents service (SOP steps 4, 5 and 7: data intake, drafts, rendered files)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from services.documents.findings import DEFAULT_NOMENCLATURE_PATH
from services.documents.verifier import DEFAULT_SUMBER_DANA_PATH
from shared.settings import ServiceSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
MIB = 1024 * 1024


def _default_files_dir() -> Path:
    # The local stack keeps everything it writes under RENJA_RUN_DIR (default <repo>/.run).
    run_dir = os.environ.get("RENJA_RUN_DIR", "").strip()
    return (Path(run_dir) if run_dir else REPO_ROOT / ".run") / "files" / "documents"


class DocumentsSettings(ServiceSettings):
    """``RENJA_*`` environment; the service name fixes the database (``documents``) and consumer group.

    - ``file_store``: where uploaded and rendered files are stored, each named by its SHA-256: ``postgres``
      (default: chunked in the documents database, so replicas keep no local state) or ``directory``;
    - ``files_dir``: the directory of ``file_store=directory`` (a volume shared by every replica);
    - ``max_upload_bytes``: the largest accepted upload (bytes; larger is refused with 413);
    - ``renstra_file`` / ``nomenclature_file`` / ``sumber_dana_file``: the reference data the findings check
      against: the Renstra PD of the agency (optional: unset, the drafts say once that Renstra alignment
      was not checked; a Renstra whose period does not cover the plan year is one blocking finding), the
      national code list in force (all urusan, kab/kota form, Kepmendagri 900.1.15.5-1317/2023), the APBD
      sumber dana list;
    - ``government_level``: the kegiatan code's 4th segment the agency must use (``2`` kab/kota, ``1`` provinsi);
    - ``region``: the region printed on a cycle opened without a registry OPD (a registry cycle prints
      its OPD identity's region; the SOP file's owner is never printed).
    """

    service: str = "documents"
    file_store: Literal["postgres", "directory"] = "postgres"
    files_dir: Path = Field(default_factory=_default_files_dir)
    max_upload_bytes: int = Field(default=10 * MIB, gt=0)
    renstra_file: Path | None = None
    nomenclature_file: Path = DEFAULT_NOMENCLATURE_PATH
    sumber_dana_file: Path = DEFAULT_SUMBER_DANA_PATH
    government_level: Literal["1", "2"] = "2"
    region: str | None = None

    @model_validator(mode="after")
    def _reference_files_exist(self) -> DocumentsSettings:
        for name in ("renstra_file", "nomenclature_file", "sumber_dana_file"):
            path: Path | None = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{name}: {path} is not a readable file (set RENJA_{name.upper()})")
        return self
