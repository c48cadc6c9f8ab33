"""Webhook targets: in production never loopback, private, link-local, unique-local or unspecified
addresses (server-side request forgery), whether written as an IP or behind a host name; anything in
development and test. Also where receipt links point by default."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import pytest

from services.notifier.settings import NotifierSettings
from services.notifier.targets import ForbiddenTarget, Resolver, check_webhook_target, forbidden_reason

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.7", "private"),
        ("172.16.5.4", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("fc00::1", "unique-local"),
        ("fd12:3456:789a::1", "unique-local"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.1.2.3", "private"),
        ("224.0.0.1", "multicast"),
    ],
)
def test_internal_addresses_are_refused_with_their_kind(address: str, reason: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "172.32.0.1", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) is None


def _resolver(answers: dict[str, Sequence[str]]) -> tuple[Resolver, list[tuple[str, int]]]:
    """A fake DNS: ``answers`` by host name; any other name fails like getaddrinfo. Records each lookup."""
    calls: list[tuple[str, int]] = []

    async def resolve(host: str, port: int) -> Sequence[str]:
        calls.append((host, port))
        if host not in answers:
            raise OSError(-2, "Name or service not known")
        return answers[host]

    return resolve, calls


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://[::1]:8443/hook",
        "https://10.0.0.7/admin",
        "https://169.254.169.254/latest/meta-data/",
        "https://[fe80::1%25eth0]/x",
        "https://[fd00::5]/x",
        "https://0.0.0.0/x",
        "https://[::ffff:192.168.0.1]/x",
    ],
)
async def test_production_refuses_internal_ip_literals(url: str) -> None:
    resolve, calls = _resolver({})
    with pytest.raises(ForbiddenTarget, match="address"):
        await check_webhook_target(url, production=True, resolve=resolve)
    assert calls == []  # a literal needs no lookup


async def test_production_refuses_a_name_resolving_to_any_internal_address() -> None:
    resolve, calls = _resolver({"hooks.example": ["93.184.216.34", "10.9.8.7"], "intranet.example": ["192.168.0.9"]})
    with pytest.raises(ForbiddenTarget, match=r"10\.9\.8\.7, a private address"):
        await check_webhook_target("https://hooks.example/renja", production=True, resolve=resolve)
    with pytest.raises(ForbiddenTarget, match="private"):
        await check_webhook_target("https://intranet.example:8443/x", production=True, resolve=resolve)
    assert calls == [("hooks.example", 443), ("intranet.example", 8443)]


async def test_production_refuses_a_name_that_does_not_resolve() -> None:
    resolve, _ = _resolver({})
    with pytest.raises(ForbiddenTarget, match="does not resolve"):
        await check_webhook_target("https://nowhere.invalid/x", production=True, resolve=resolve)


async def test_production_accepts_a_name_resolving_to_public_addresses_only() -> None:
    resolve, _ = _resolver({"sipd.example": ["93.184.216.34", "2606:4700:4700::1111"]})
    await check_webhook_target("https://sipd.example/hooks/renja", production=True, resolve=resolve)
    await check_webhook_target("https://93.184.216.34/hooks", production=True, resolve=resolve)


async def test_the_default_resolver_is_the_event_loops() -> None:
    # "localhost" resolves from the hosts file, without the network.
    with pytest.raises(ForbiddenTarget, match="loopback"):
        await check_webhook_target("https://localhost:9/x", production=True)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8999/hook", "http://localhost/x", "http://10.0.0.7/x"])
async def test_development_and_test_allow_local_receivers(url: str) -> None:
    resolve, calls = _resolver({})
    await check_webhook_target(url, production=False, resolve=resolve)
    assert calls == []


# --- receipt links -------------------------------------------------------------------------------------


def test_receipt_links_default_to_the_stacks_notifier_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RENJA_SERVICE_PORTS", '{"directive": 9101, "notifier": 9105}')
    monkeypatch.setenv("RENJA_SERVICE_HOST", "127.0.0.2")
    monkeypatch.delenv("RENJA_PUBLIC_BASE_URL", raising=False)
    assert NotifierSettings(environment="test").public_base_url == "http://127.0.0.2:9105"
    monkeypatch.delenv("RENJA_SERVICE_HOST")
    assert NotifierSettings(environment="test").public_base_url == "http://127.0.0.1:9105"


def test_receipt_links_default_to_8105_without_a_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RENJA_SERVICE_PORTS", raising=False)
    monkeypatch.delenv("RENJA_PUBLIC_BASE_URL", raising=False)
    assert NotifierSettings(environment="test").public_base_url == "http://127.0.0.1:8105"


def test_an_explicit_public_base_url_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RENJA_SERVICE_PORTS", '{"notifier": 9105}')
    monkeypatch.setenv("RENJA_PUBLIC_BASE_URL", "https://renja.bappeda.example")
    assert NotifierSettings(environment="test").public_base_url == "https://renja.bappeda.example"
    monkeypatch.delenv("RENJA_PUBLIC_BASE_URL")
    assert NotifierSettings(environment="test", public_base_url="https://x.example").public_base_url == (
        "https://x.example"
    )
