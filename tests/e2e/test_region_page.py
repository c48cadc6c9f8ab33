"""The region-wide page in a real browser: headless Chromium loads ``/region`` from the running audit
service over HTTP; the rendered DOM lists both OPDs' cycles with their current steps, and the page's own
CSV link answers exactly the API's rows."""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import uuid4

import httpx
import pytest

from services.audit.settings import AuditSettings
from tests.e2e.test_timeline_page import chromium, served
from tests.integration.test_audit_projection import SOP, START, publish, wait_rows
from tests.kit.driver import cycle_events
from tests.kit.tokens import auth

pytestmark = pytest.mark.e2e

__all__ = ["served"]  # the fixture, shared with the timeline page's test

OPDS = {
    "5.01.5.05.0.00.01.0000": "Badan Perencanaan Pembangunan, Riset dan Inovasi Daerah",
    "1.01.0.00.0.00.01.0000": "Dinas Pendidikan",
}


async def test_the_region_page_lists_both_opds_cycles_and_its_csv_equals_the_api(
    served: tuple[str, AuditSettings], tmp_path: Path
) -> None:
    base, cfg = served
    (code_a, name_a), (code_b, name_b) = OPDS.items()
    # OPD A stops after the perintah (waits on step 4); OPD B after the Rancangan Akhir (waits on step 8)
    a = cycle_events(SOP, uuid4(), start=START, opd=name_a, opd_code=code_a, fiscal_year=2027)[:3]
    b = cycle_events(SOP, uuid4(), start=START + timedelta(hours=2), opd=name_b, opd_code=code_b, fiscal_year=2027)[:7]
    await publish(cfg.kafka_bootstrap, cfg.event_topic, a + b)
    await wait_rows(cfg.postgres_dsn(), len(a) + len(b))
    bappeda = auth(cfg, "bappeda")
    url = f"{base}/region?tahun=2027&token={bappeda['Authorization'].removeprefix('Bearer ')}"

    dom = await chromium("--dump-dom", url, cwd=tmp_path)
    rows = {m[0]: m[1] for m in re.findall(r'<tr id="cycle-([0-9a-f-]+)"(.*?)</tr>', dom, flags=re.S)}
    assert set(rows) == {str(a[0].renja_id), str(b[0].renja_id)}
    row_a, row_b = rows[str(a[0].renja_id)], rows[str(b[0].renja_id)]
    assert code_a in row_a and name_a in row_a and f"4. {SOP.step(4).name}" in row_a and "Staf" in row_a
    assert code_b in row_b and name_b in row_b and f"8. {SOP.step(8).name}" in row_b
    assert "Kasubag Perencanaan dan Pelaporan" in row_b
    assert "Tahun rencana" in dom and 'id="count">2<' in dom

    # the page's CSV link pins the moment the page measured to: the same rows as the API at that moment
    href = re.search(r'<a id="csv" href="([^"]+)"', dom)
    assert href is not None
    link = html.unescape(href.group(1))
    query = parse_qs(urlsplit(link).query)
    assert query["tahun"] == ["2027"] and query["as_of"]
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        exported = await client.get(link)
        assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
        api = await client.get("/region/cycles", params={"tahun": 2027, "as_of": query["as_of"][0]}, headers=bappeda)
        assert api.status_code == 200
    body = api.json()
    assert [r["opd_code"] for r in body["rows"]] == sorted(OPDS)
    assert list(csv.DictReader(io.StringIO(exported.text))) == [
        {k: _cell(v) for k, v in r.items()} for r in body["rows"]
    ]

    shot = tmp_path / "region.png"
    await chromium(f"--screenshot={shot}", "--window-size=1600,900", url, cwd=tmp_path)
    assert shot.stat().st_size > 10_000


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
