"""``LocalKeySigner`` satisfies the ``Signer`` Protocol under mypy --strict, without a cast.

The Protocol declares ``key_id`` read-only; a settable member would refuse the frozen dataclass, and only a
type checker notices that, so the check runs mypy over a three-line program.
"""

from __future__ import annotations

import pytest
from mypy import api

pytestmark = pytest.mark.unit

PROGRAM = """
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from services.approvals.signing import LocalKeySigner, Signer
signer: Signer = LocalKeySigner.from_key(Ed25519PrivateKey.generate())
print(signer.key_id)
"""


def test_local_key_signer_is_a_signer_for_mypy() -> None:
    stdout, stderr, status = api.run(["--strict", "--no-error-summary", "-c", PROGRAM])
    assert status == 0, stdout + stderr


def test_a_signer_cannot_have_its_key_id_reassigned() -> None:
    stdout, _, status = api.run(["--strict", "--no-error-summary", "-c", PROGRAM + "signer.key_id = 'other'\n"])
    assert status != 0 and "key_id" in stdout
