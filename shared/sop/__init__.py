"""The SOP "Penyusunan Rencana Kerja (Renja)" as data, and the pure decider every service shares.

One module per kind of change:

- ``definition``: the SOP file's schema (``SopDefinition`` and its parts) and ``load_sop``;
- ``errors``: ``DomainError`` and one subclass per reason a command is refused;
- ``commands``: the commands (imperative, frozen requests) and ``CommandContext`` (who, ids, clock);
- ``state``: ``RenjaState``, ``evolve`` and ``fold``;
- ``guards``: the public checks (``ensure_due``, ``ensure_current_version``, ``ensure_new_version``,
  ``ensure_parafs_complete``) the decider runs and services may run early, so a refusal reads the same
  wherever it is raised;
- ``decider``: ``decide(state, command, ctx, sop) -> list[Event]`` (or a ``DomainError``);
- ``anomaly``: ``classify(state, event, sop)`` (an event the SOP would not have decided there) and
  ``ensure_foldable`` (the services refuse such a transition: ``UnfoldableEvent``).

Everything below ``load_sop`` is pure: no clock, no random ids, no environment, no I/O. Ids and "now"
come in through ``CommandContext``. The step order, roles and time standards come from the SOP table
(shared/DESIGN.md); rules beyond the form (return for revision from the review steps back to the
Rancangan Akhir, cancellation by the head, version binding of approvals) are the design's additions and
are marked as such where they are decided. ``from shared.sop import X`` works for every name below.
"""

from shared.sop.anomaly import (
    ANOMALY_KINDS,
    Anomaly,
    AnomalyKind,
    UnfoldableEvent,
    classify,
    ensure_foldable,
)
from shared.sop.commands import (
    CancelRenja,
    Command,
    CommandContext,
    CompleteDataCollection,
    CreateRancanganAkhir,
    CreateRancanganAwal,
    Distribute,
    Initial,
    IssueArahan,
    IssueInstruksi,
    IssuePerintah,
    RecordMeeting,
    RecordReceipt,
    ReturnDraft,
    Sign,
    derive_event_id,
)
from shared.sop.decider import command_step, decide
from shared.sop.definition import (
    CANONICAL_COMPLETIONS,
    KIND_ORDER,
    SHIPPED_PLAN,
    SOP_FILE_ENV,
    Agency,
    Completion,
    DayHours,
    DistributionRecipient,
    OfficeHours,
    Record,
    SopDefinition,
    SopFileError,
    SopStep,
    StepKind,
    StepPlan,
    StepRole,
    Unit,
    default_sop_path,
    kind_completion,
    load_sop,
)
from shared.sop.errors import (
    AlreadyRecorded,
    AlreadyStarted,
    BlockingFindings,
    DomainError,
    InvalidCommand,
    OutOfOrder,
    RenjaClosed,
    StaleVersion,
    WrongRole,
)
from shared.sop.guards import (
    DraftKind,
    current_version,
    due_text,
    ensure_current_version,
    ensure_due,
    ensure_new_version,
    ensure_parafs_complete,
    refusal,
)
from shared.sop.state import (
    CLOSED,
    DraftInfo,
    RenjaState,
    RenjaStatus,
    cycle_distribution,
    cycle_units,
    evolve,
    fold,
    next_step,
)

__all__ = [
    "ANOMALY_KINDS",
    "CANONICAL_COMPLETIONS",
    "CLOSED",
    "KIND_ORDER",
    "SHIPPED_PLAN",
    "SOP_FILE_ENV",
    "Agency",
    "AlreadyRecorded",
    "AlreadyStarted",
    "Anomaly",
    "AnomalyKind",
    "BlockingFindings",
    "CancelRenja",
    "Command",
    "CommandContext",
    "CompleteDataCollection",
    "Completion",
    "CreateRancanganAkhir",
    "CreateRancanganAwal",
    "DayHours",
    "Distribute",
    "DistributionRecipient",
    "DomainError",
    "DraftInfo",
    "DraftKind",
    "Initial",
    "InvalidCommand",
    "IssueArahan",
    "IssueInstruksi",
    "IssuePerintah",
    "OfficeHours",
    "OutOfOrder",
    "Record",
    "RecordMeeting",
    "RecordReceipt",
    "RenjaClosed",
    "RenjaState",
    "RenjaStatus",
    "ReturnDraft",
    "Sign",
    "SopDefinition",
    "SopFileError",
    "SopStep",
    "StaleVersion",
    "StepKind",
    "StepPlan",
    "StepRole",
    "UnfoldableEvent",
    "Unit",
    "WrongRole",
    "classify",
    "command_step",
    "current_version",
    "cycle_distribution",
    "cycle_units",
    "decide",
    "default_sop_path",
    "derive_event_id",
    "due_text",
    "ensure_current_version",
    "ensure_due",
    "ensure_foldable",
    "ensure_new_version",
    "ensure_parafs_complete",
    "evolve",
    "fold",
    "kind_completion",
    "load_sop",
    "next_step",
    "refusal",
]
