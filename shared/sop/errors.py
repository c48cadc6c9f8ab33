"""The domain errors: a command refused by the SOP's rules, one class per reason (stable ``code``, HTTP
status)."""

from __future__ import annotations

from typing import ClassVar


class DomainError(Exception):
    """A command refused by the SOP's rules. ``code`` is stable (for clients), ``message`` is for people.

    ``due_step``/``due_role`` say what the Renja is waiting for, when anything.
    """

    code: ClassVar[str] = "domain_error"
    http_status: ClassVar[int] = 400

    def __init__(self, message: str, *, due_step: int | None = None, due_role: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.due_step = due_step
        self.due_role = due_role


class WrongRole(DomainError):
    """The actor's role may not do this step (only the step's role may; auditors never)."""

    code = "wrong_role"
    http_status = 403


class OutOfOrder(DomainError):
    """The command is for a step that is not the one due."""

    code = "out_of_order"
    http_status = 409


class StaleVersion(DomainError):
    """The command names a draft version or hash that is not the current one (design: versions bind)."""

    code = "stale_version"
    http_status = 409


class AlreadyStarted(DomainError):
    """An *arahan* for a Renja cycle that has already started."""

    code = "already_started"
    http_status = 409


class RenjaClosed(DomainError):
    """The cycle is cancelled or distributed: nothing but a receipt may follow."""

    code = "renja_closed"
    http_status = 409


class BlockingFindings(DomainError):
    """The current Rancangan Akhir has blocking validation findings; it cannot be initialed."""

    code = "blocking_findings"
    http_status = 409


class AlreadyRecorded(DomainError):
    """A receipt for this recipient was already recorded (step 11's proof is once per recipient)."""

    code = "already_recorded"
    http_status = 409


class InvalidCommand(DomainError):
    """The command's content is wrong for the SOP (missing units, unknown recipient, bad signature...)."""

    code = "invalid_command"
    http_status = 422
