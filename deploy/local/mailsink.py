"""The local SMTP sink (stack component ``mail``): accepts every message, delivers none.

Each received message is written as one RFC 5322 ``.eml`` file into the mail directory
(``.run/mail/`` by default), with two extra headers prepended so a reader sees the SMTP envelope,
which may differ from the ``To:`` header (Bcc): ``X-Envelope-From`` and ``X-Envelope-To``.
Files are written to a temporary name and renamed, so a reader never sees half a message.

Run as ``python -m deploy.local.mailsink --host 127.0.0.1 --port 2525 --dir .run/mail``; it serves
until SIGTERM/SIGINT. For the local stack only: no auth, no TLS, loopback.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP


class EmlDirectoryHandler:
    """aiosmtpd handler writing each message's bytes into ``directory`` as ``<utc-stamp>-<id>.eml``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """Store the message; always answers ``250`` (the sink never refuses a well-formed message)."""
        # A sink, not a domain: the wall clock and a random id only name the file.
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        name = f"{stamp}-{uuid.uuid4().hex[:12]}.eml"
        content = envelope.original_content or envelope.content or b""
        if isinstance(content, str):
            content = content.encode("utf-8")
        header = (
            f"X-Envelope-From: {envelope.mail_from}\r\nX-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n"
        ).encode()
        tmp = self.directory / f".{name}.tmp"
        tmp.write_bytes(header + content)
        tmp.rename(self.directory / name)
        return "250 Message accepted for delivery"


async def serve(host: str, port: int, directory: Path) -> None:
    """Serve SMTP on ``host:port`` until SIGTERM or SIGINT, storing messages in ``directory``."""
    handler = EmlDirectoryHandler(directory)
    loop = asyncio.get_running_loop()
    # A fixed hostname avoids aiosmtpd's getfqdn() lookup, which can stall without DNS.
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="renja-mail-sink", enable_SMTPUTF8=True), host=host, port=port
    )
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"mail sink listening on {host}:{port}, writing to {directory}", flush=True)
    async with server:
        await stop.wait()
    print("mail sink stopped", flush=True)


def main() -> None:
    """Command-line entry point (see the module docstring)."""
    parser = argparse.ArgumentParser(description="Local SMTP sink writing .eml files")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2525)
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(serve(args.host, args.port, args.dir))


if __name__ == "__main__":
    main()
