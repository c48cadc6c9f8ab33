"""Every record of a registry OPD's cycle takes its identity from its OPD and region, never from the SOP
file's owner (Bappeda Kota Bogor, whose SOP the shipped file is: only that SOP's provenance).

A whole cycle of Dinas Pendidikan Kabupaten Bengkulu Utara is decided in-process (the kit's driver, the
registry's identity snapshot in its arahan); then every document (Rancangan Awal/Akhir and signed Renja as
PDF and DOCX, daftar hadir, notulen), every mail (next actor at each step, distribution to each recipient)
and the audit's timeline page are rendered as the services render them, and searched.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import docx
import pypdf
import pytest

from services.audit.page import render_timeline_html
from services.audit.service import page_header
from services.audit.timeline import build_timeline, steps_from_sop
from services.audit.workcalendar import WorkCalendar
from services.documents.draft import DraftMeta, content_sha256
from services.documents.findings import load_nomenclature
from services.documents.rendering import (
    MeetingDoc,
    SignatureBlock,
    render_daftar_hadir_pdf,
    render_draft_docx,
    render_draft_pdf,
    render_notulen_pdf,
)
from services.documents.service import identity_meta, review_context
from services.documents.settings import DocumentsSettings
from services.documents.verifier import load_sumber_dana, review
from services.notifier.messages import distribution_mail, next_actor_mail
from shared.events import Distributed, MeetingHeld, Signed
from shared.registry import load_registry
from shared.sop import RenjaState, evolve, load_sop
from tests.kit.driver import RECEIPT, STEPS, Cycle, DriveOptions
from tests.kit.rows import load_opd_rows

pytestmark = pytest.mark.unit

DISDIK = "1.01.2.22.0.00.01.0000"
OWNER_STRINGS = ("Bogor", "Bappeda Kota", "Wali Kota")
"""What of the SOP owner (``shared/sop.yaml`` ``agency``: Bappeda Kota Bogor) must not appear."""


def pdf_text(data: bytes) -> str:
    return " ".join(" ".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(data)).pages).split())


def docx_text(data: bytes) -> str:
    document = docx.Document(io.BytesIO(data))
    cells = [c.text for t in document.tables for r in t.rows for c in r.cells]
    return " ".join([p.text for p in document.paragraphs] + cells)


def test_no_record_of_a_registry_opds_cycle_names_the_sop_owner() -> None:
    sop, registry = load_sop(), load_registry()
    assert "Bogor" in sop.agency.name  # the premise: the shipped SOP's owner is Bogor's Bappeda
    identity = registry.identity(DISDIK)
    options = DriveOptions(fiscal_year=2027, identity=identity)
    cycle = Cycle(sop, options=options, clock=datetime(2026, 10, 5, 1, 0, tzinfo=UTC), gap=timedelta(minutes=30))
    states: list[RenjaState] = []
    while (due := cycle.state.due_step) is not None:
        cycle.run(STEPS[due])
        states.append(cycle.state)
    for _ in identity.distribution:
        cycle.run(RECEIPT)
    state = cycle.state
    assert state.status == "distributed" and state.opd_identity == identity
    texts: dict[str, str] = {}

    # documents: the drafts, the signed Renja (PDF and DOCX), daftar hadir and notulen
    settings = DocumentsSettings()
    rows = load_opd_rows(DISDIK)[:12]  # the identity is in the frame, not the rows: few rows render fast
    findings = review(rows, nomenclature=load_nomenclature(settings.nomenclature_file), renstra=None,
                      sumber_dana=load_sumber_dana(settings.sumber_dana_file),
                      context=review_context(state, "2"))  # fmt: skip
    meta = DraftMeta(opd=state.opd, fiscal_year=2027, stage="akhir", version=2, region=identity.region,
                     **identity_meta(state))  # fmt: skip
    signed = next(e for e in cycle.events if isinstance(e, Signed))
    signature = SignatureBlock(signer_name=signed.actor.name, signer_nip=signed.actor.nip,
                               signer_position=meta.head_title, signed_at=signed.occurred_at,
                               content_sha256=content_sha256(rows, meta), key_id=signed.key_id)  # fmt: skip
    texts["rancangan.pdf"] = pdf_text(render_draft_pdf(meta, rows, findings))
    texts["renja-signed.pdf"] = pdf_text(render_draft_pdf(meta, rows, findings, signature))
    texts["renja.docx"] = docx_text(render_draft_docx(meta, rows, findings, signature))
    held = next(e for e in cycle.events if isinstance(e, MeetingHeld))
    meeting = MeetingDoc(opd=state.opd, region=identity.region, fiscal_year=2027, held_at=held.held_at,
                         place=held.place, notulis=held.actor.name, draft_version=held.draft_version,
                         draft_sha256=held.draft_sha256, attendees=held.attendees, points=held.points,
                         decisions=held.decisions, requested_changes=held.requested_changes)  # fmt: skip
    texts["daftar_hadir.pdf"] = pdf_text(render_daftar_hadir_pdf(meeting))
    texts["notulen.pdf"] = pdf_text(render_notulen_pdf(meeting))

    # mails: the next actor at every step, and the distribution to every recipient
    for index, after in enumerate(states):
        if after.due_step is not None:
            mail = next_actor_mail(after, sop.step(after.due_step), sop, to_name="X", to_email="x@example.org",
                                   renja_id=cycle.renja_id)  # fmt: skip
            texts[f"mail-next-{index}"] = mail.subject + "\n" + mail.body
    distributed = next(e for e in cycle.events if isinstance(e, Distributed))
    assert [r.name for r in distributed.recipients] == [r.name for r in identity.distribution]
    for recipient in distributed.recipients:
        mail = distribution_mail(state, distributed, recipient, receipt_url="http://x/receipts/t", sop=sop)
        texts[f"mail-distribution-{recipient.unit}"] = mail.to + "\n" + mail.subject + "\n" + mail.body

    # the audit's timeline page
    timeline = build_timeline(cycle.events, steps_from_sop(sop), WorkCalendar())
    folded = RenjaState()
    for event in cycle.events:
        folded = evolve(folded, event, sop)
    texts["timeline.html"] = render_timeline_html(timeline, {"agency": page_header(folded)})

    # the event payloads themselves
    texts["events"] = "\n".join(e.model_dump_json() for e in cycle.events)

    leaks = {name: s for name, text in texts.items() for s in OWNER_STRINGS if s in text}
    assert leaks == {}
    assert "Arga Makmur" in texts["renja-signed.pdf"]  # the region's place of signing
    assert "Kepala Dinas Pendidikan" in texts["renja-signed.pdf"]
    assert "Kabupaten Bengkulu Utara" in texts["timeline.html"]
    assert all("Dinas Pendidikan Kabupaten Bengkulu Utara" in t for n, t in texts.items() if n.startswith("mail"))
