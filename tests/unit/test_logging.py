"""Logs carry no secrets: tokens in access-log query strings are redacted, tracebacks have no locals."""

from __future__ import annotations

import json
import logging

import pytest
import structlog

from shared.logging import RedactTokens, configure_logging

pytestmark = pytest.mark.unit


def test_access_log_token_is_redacted() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", "/renja/x/timeline.html?token=eyJabc.def.ghi&x=1", "1.1", 200),
        None,
    )
    RedactTokens().filter(record)
    assert "eyJabc" not in record.getMessage()
    assert "token=[redacted]&x=1" in record.getMessage()


def test_tracebacks_have_no_local_variables(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("test")
    secret = "Bearer eyJsecret.token.value"  # noqa: F841 - a local the traceback must not show
    try:
        raise ValueError("boom")
    except ValueError:
        structlog.get_logger().exception("failed")
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "eyJsecret" not in line
    assert json.loads(line)["exception"][0]["exc_type"] == "ValueError"
