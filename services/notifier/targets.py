"""Where webhooks may be delivered: never, in production, to the agency's own network or this machine.

A webhook subscription makes the notifier POST to a URL someone typed. Without a check that is a
server-side request forgery: a subscription to ``http://169.254.169.254/...`` (cloud metadata),
``http://127.0.0.1:5432`` or ``https://10.0.0.7/admin`` would have the notifier reach internal services
on the subscriber's behalf. In production the URL's host is resolved and refused if any address it
resolves to is loopback, private (RFC 1918), link-local (169.254/16, fe80::/10), unique-local
(fc00::/7), unspecified, multicast or reserved. In development and test everything is allowed: the
tests and the local stack deliver to receivers on loopback.

Known limit: the check runs when the subscription is made; a name whose DNS answer later changes to an
internal address (DNS rebinding) is not re-checked at delivery time.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""``resolve(host, port) -> [ip text, ...]``: every address the host name resolves to."""

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class ForbiddenTarget(ValueError):
    """The URL may not receive webhooks; the message says why (for a 422)."""


def forbidden_reason(address: IPAddress) -> str | None:
    """Why ``address`` may not receive webhooks in production (``"loopback"``, ``"private"``...), or None.

    An IPv4-mapped IPv6 address (``::ffff:127.0.0.1``) is judged as the IPv4 address it carries.
    """
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("unique-local", isinstance(address, ipaddress.IPv6Address) and address in _UNIQUE_LOCAL),
        ("private", address.is_private),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
    )
    return next((name for name, hit in checks if hit), None)


_UNIQUE_LOCAL = ipaddress.IPv6Network("fc00::/7")


async def resolve_with_loop(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (the event loop's ``getaddrinfo``, run in its thread pool)."""
    infos: list[tuple[Any, ...]] = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


async def check_webhook_target(url: str, *, production: bool, resolve: Resolver | None = None) -> None:
    """Refuse ``url`` as a webhook target in production if its host is or resolves to an internal address.

    ``url`` is already known to be an absolute http(s) URL with a host. Raises ``ForbiddenTarget`` naming
    the host, the address and its kind, or when the host does not resolve (production only). Returns
    without any lookup outside production.
    """
    if not production:
        return
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise ForbiddenTarget(f"url has an invalid port: {exc}") from exc
    try:
        literal: IPAddress | None = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            addresses = list(await (resolve or resolve_with_loop)(host, port))
        except (OSError, UnicodeError) as exc:  # socket.gaierror is an OSError; bad IDNA is a UnicodeError
            raise ForbiddenTarget(f"the webhook host {host!r} does not resolve ({exc}); check the URL.") from exc
        if not addresses:
            raise ForbiddenTarget(f"the webhook host {host!r} does not resolve; check the URL.")
    for text in addresses:
        reason = forbidden_reason(ipaddress.ip_address(text.split("%", 1)[0]))
        if reason is not None:
            raise ForbiddenTarget(
                f"the webhook host {host!r} resolves to {text}, a {reason} address; webhooks may only go to "
                "public addresses in production."
            )
