"""The local stack's SMTP sink as a managed process (the sink itself is ``deploy.local.mailsink``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys

from deploy.local.process import read_pid, spawn, terminate
from deploy.local.settings import StackSettings


class Mail:
    """The SMTP sink (``python -m deploy.local.mailsink``) writing ``.eml`` files to the mail dir."""

    name = "mail"
    _marker = "deploy.local.mailsink"

    def __init__(self, settings: StackSettings) -> None:
        self.s = settings
        self.address = settings.mail_address
        self.log_path = settings.log_dir / "mail.log"
        self.start_timeout_s = settings.mail_start_timeout_s
        self.pid_file = settings.run_dir / "mail.pid"

    def pid(self) -> int | None:
        """The sink's pid if alive."""
        return read_pid(self.pid_file, self._marker)

    def has_run_before(self) -> bool:
        return self.pid_file.exists()

    async def healthy(self) -> bool:
        """Alive and greeting with an SMTP ``220`` banner."""
        if self.pid() is None:
            return False
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(self.s.mail_host, self.s.mail_port), 2)
        except (OSError, TimeoutError):
            return False
        try:
            banner = await asyncio.wait_for(reader.readline(), 2)
            writer.write(b"QUIT\r\n")
            await writer.drain()
            return banner.startswith(b"220")
        except (OSError, TimeoutError):
            return False
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def start(self) -> None:
        """Start the sink detached."""
        argv = [sys.executable, "-m", self._marker, "--host", self.s.mail_host]
        argv += ["--port", str(self.s.mail_port), "--dir", str(self.s.mail_dir)]
        env = {**os.environ, **self.s.as_env(), "PYTHONUNBUFFERED": "1"}
        spawn(argv, log_path=self.log_path, pid_file=self.pid_file, cwd=self.s.repo_root, env=env)

    async def stop(self) -> None:
        """SIGTERM, then SIGKILL after ``stop_timeout_s``."""
        pid = self.pid()
        if pid is not None:
            await terminate(pid, self.s.stop_timeout_s)
        self.pid_file.unlink(missing_ok=True)
