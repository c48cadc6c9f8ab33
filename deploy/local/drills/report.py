"""The drills' check list: each check printed as it is made, and the verdict at the end."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Report:
    """The checks in order: ``(name, ok, detail)``; ``ok`` only when there is at least one and all passed."""

    checks: list[tuple[str, bool, str]] = field(default_factory=list)

    def check(self, name: str, ok: bool, detail: str = "") -> bool:
        self.checks.append((name, ok, detail))
        print(f"  [{'ok' if ok else 'FAIL'}] {name}{': ' + detail if detail else ''}", flush=True)
        return ok

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(ok for _, ok, _ in self.checks)
