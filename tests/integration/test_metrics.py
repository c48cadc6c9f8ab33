"""``GET /metrics`` of an in-process service after real work: commands counted, outbox drained, DLQ counted."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaProducer

from services.directive.main import create_app
from services.directive.settings import DirectiveSettings
from tests.kit.metrics import Samples, value, wait_metric
from tests.kit.servicekit import run_service
from tests.kit.tokens import auth

pytestmark = pytest.mark.integration

ARAHAN = {
    "opd": "Bappeda Kota Bogor",
    "fiscal_year": 2027,
    "text": "Susun Renja 2027 sesuai Renstra",
    "addressee_name": "Ir. Ratna Sari Dewi",
}


def drained(samples: Samples) -> bool:
    return (
        value(samples, "renja_outbox_backlog_rows") == 0 and (value(samples, "renja_outbox_published_total") or 0) >= 1
    )


async def test_a_command_is_counted_published_and_timed_and_a_poison_record_counts_as_dead_lettered(
    topic: str,
) -> None:
    async with run_service(create_app, DirectiveSettings, topic=topic) as (client, s):
        r = await client.post("/renja", json=ARAHAN, headers=auth(s, "kepala_badan"))
        assert r.status_code == 201, r.text
        again = await client.post("/renja", json=ARAHAN, headers=auth(s, "kepala_badan"))
        assert again.status_code >= 400, again.text
        code = again.json()["error"]

        samples = await wait_metric(client, drained)
        assert value(samples, "renja_commands_total", command="IssueArahan", outcome="applied", code="") == 1
        assert value(samples, "renja_commands_total", command="IssueArahan", outcome="refused", code=code) == 1
        assert value(samples, "renja_outbox_oldest_unpublished_age_seconds") == 0
        assert value(samples, "renja_outbox_relay_failures_total") == 0
        assert (
            value(samples, "renja_http_request_duration_seconds_count", method="POST", route="/renja", status="201")
            == 1
        )
        # the consumer reads back the service's own event (a duplicate: its inbox row came with the command)
        samples = await wait_metric(client, lambda m: value(m, "renja_consumer_duplicates_skipped_total") == 1)
        lags = {k: v for k, v in samples.items() if k[0] == "renja_consumer_lag_records"}
        assert lags and set(lags.values()) == {0}, lags

        producer = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(
                topic, key=b"k", value=b"{not json"
            )  # no CloudEvents headers: dead-lettered as missing_header
        finally:
            await producer.stop()
        samples = await wait_metric(
            client, lambda m: value(m, "renja_consumer_dead_lettered_total", reason="missing_header") == 1
        )
        assert value(samples, "renja_consumer_events_applied_total") == 0
