"""The services as managed processes: one ``uvicorn <manifest app> --factory`` per service, on its port.

Owns each service's child environment (every ``RENJA_*`` stack setting plus its own name, database DSN and
Kafka bootstrap), its ``/healthz`` + ``/readyz`` probe, and which services exist in the work tree.
"""

from __future__ import annotations

import os
import sys

import httpx

from deploy.local.process import read_pid, spawn, terminate
from deploy.local.settings import StackSettings
from shared import manifest


class Service:
    """One service: ``uvicorn <its manifest app path> --factory`` on its port from ``settings.service_ports``."""

    def __init__(self, settings: StackSettings, name: str) -> None:
        self.s = settings
        self.name = name
        self.port = settings.service_ports[name]
        self.address = f"{settings.service_host}:{self.port}"
        self.log_path = settings.log_dir / f"{name}.log"
        self.start_timeout_s = settings.service_start_timeout_s
        self.pid_file = settings.run_dir / f"{name}.pid"
        self._marker = manifest.app_of(name)

    def pid(self) -> int | None:
        """The uvicorn process's pid if alive."""
        return read_pid(self.pid_file, self._marker)

    def has_run_before(self) -> bool:
        return self.pid_file.exists()

    async def healthy(self) -> bool:
        """Alive, ``GET /healthz`` and ``GET /readyz`` both answer 200."""
        if self.pid() is None:
            return False
        base = self.s.service_url(self.name)
        try:
            async with httpx.AsyncClient(base_url=base, timeout=3.0) as client:
                for path in ("/healthz", "/readyz"):
                    if (await client.get(path)).status_code != 200:
                        return False
        except httpx.HTTPError:
            return False
        return True

    def env(self) -> dict[str, str]:
        """The child's environment: ours, plus every ``RENJA_*`` stack setting, plus for convenience
        ``RENJA_SERVICE`` (its name), ``RENJA_DATABASE_URL`` (its own database's DSN) and
        ``RENJA_KAFKA_BOOTSTRAP``."""
        return {
            **os.environ,
            **self.s.as_env(),
            "RENJA_SERVICE": self.name,
            "RENJA_DATABASE_URL": self.s.postgres_dsn(manifest.database_of(self.name)),
            "RENJA_KAFKA_BOOTSTRAP": self.s.kafka_bootstrap,
            "PYTHONUNBUFFERED": "1",
        }

    async def start(self) -> None:
        """Start uvicorn detached, cwd = repo root (so ``services.<name>`` imports from the work tree)."""
        argv = [sys.executable, "-m", "uvicorn", self._marker, "--factory"]
        argv += ["--host", self.s.service_host, "--port", str(self.port)]
        spawn(argv, log_path=self.log_path, pid_file=self.pid_file, cwd=self.s.repo_root, env=self.env())

    async def stop(self) -> None:
        """SIGTERM (uvicorn drains and runs the lifespan shutdown), then SIGKILL after ``stop_timeout_s``."""
        pid = self.pid()
        if pid is not None:
            await terminate(pid, self.s.stop_timeout_s)
        self.pid_file.unlink(missing_ok=True)


def existing_services(settings: StackSettings) -> list[str]:
    """Names from ``settings.service_ports`` whose module ``services/<name>/main.py`` exists."""
    return [name for name in settings.service_ports if (settings.repo_root / "services" / name / "main.py").exists()]
