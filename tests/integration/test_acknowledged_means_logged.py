"""Acknowledged means logged (issue 11.3): the order of the acknowledgements is the order on the log.

The trial of the issue, 20 times: the kasubag's paraf, then the sekretaris's paraf (approvals), each
awaited to its 201, then the head's cancellation (directive). Both services run here, each with its own
database and outbox relay, on one topic; steps 1-7 come from ``tests.kit.driver``. On the log (one
partition: the Renja id is the key) the three events stand in the order they were acknowledged and
nothing follows the cancellation. Before, each relay published on its own schedule and the second paraf
sat after the cancellation (3 of 3 trials). The 20 trials run concurrently: one Renja's commands are
strictly one after the other, the Renjas' commands interleave.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.approvals.main import create_app as approvals_app
from services.approvals.settings import ApprovalsSettings
from services.directive.main import create_app as directive_app
from services.directive.settings import DirectiveSettings
from shared.settings import ServiceSettings
from tests.kit.driver import Cycle, publish_until
from tests.kit.kafkatools import read_all
from tests.kit.servicekit import run_service, wait_state
from tests.kit.tokens import auth

pytestmark = pytest.mark.integration

TRIALS = 20


def _draft(driven: Cycle, **extra: Any) -> dict[str, Any]:
    return {"version": driven.state.akhir_version, "content_sha256": driven.state.akhir_sha256, **extra}


async def trial(
    approvals: httpx.AsyncClient, directive: httpx.AsyncClient, s: ServiceSettings, driven: Cycle
) -> list[str]:
    """paraf 8, paraf 9, cancel, each awaited to 201; the acknowledged event ids in that order."""
    url = f"/renja/{driven.renja_id}"
    acked: list[str] = []
    for role in ("kasubag_pp", "sekretaris"):
        r = await approvals.post(f"{url}/paraf", json=_draft(driven, warnings_acknowledged=[]), headers=auth(s, role))
        assert r.status_code == 201, r.text
        acked.append(r.json()["record"]["event_id"])
    r = await directive.post(f"{url}/cancel", json={"reason": "Uji urutan log"}, headers=auth(s, "kepala_badan"))
    assert r.status_code == 201, r.text
    acked += [e["event_id"] for e in r.json()["events"]]
    return acked


async def test_paraf_paraf_cancel_stand_on_the_log_in_acknowledgement_order(topic: str, tmp_path: Path) -> None:
    async with (
        run_service(approvals_app, ApprovalsSettings, topic=topic, run_dir=tmp_path) as (approvals, s),
        run_service(directive_app, DirectiveSettings, topic=topic) as (directive, d),
    ):
        cycles = [await publish_until(s, topic, step=7) for _ in range(TRIALS)]
        for driven in cycles:
            await wait_state(approvals, s, driven.renja_id, until=lambda st: st["due_step"] == 8)
            await wait_state(directive, d, driven.renja_id, until=lambda st: st["due_step"] == 8)
        results = await asyncio.gather(*(trial(approvals, directive, s, driven) for driven in cycles))

    records = await read_all(s.kafka_bootstrap, topic)
    for driven, acked in zip(cycles, results, strict=True):
        mine = sorted((r for r in records if r.key == str(driven.renja_id).encode()), key=lambda r: r.offset)
        assert len({r.partition for r in mine}) == 1
        logged = list(dict.fromkeys(json.loads(r.value)["event_id"] for r in mine))  # a re-send counts once
        assert len(acked) == 3 and set(acked) <= set(logged), (acked, logged)
        assert logged[-3:] == acked, f"Renja {driven.renja_id}: log order {logged[-4:]} is not the ack order {acked}"
