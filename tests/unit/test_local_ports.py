"""The local stack listens below the kernel's ephemeral port range, so a restarted server can always bind."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.local.settings import StackSettings

pytestmark = pytest.mark.unit


def test_listening_ports_are_below_the_ephemeral_range(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RENJA_POSTGRES_PORT", "RENJA_KAFKA_PORT", "RENJA_KAFKA_CONTROLLER_PORT", "RENJA_MAIL_PORT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("RENJA_SERVICE_PORTS", raising=False)
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    s = StackSettings()
    ports = [s.postgres_port, s.kafka_port, s.kafka_controller_port, s.mail_port, *s.service_ports.values()]
    assert all(p < low for p in ports), (ports, low)
