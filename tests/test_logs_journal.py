"""Logs under journald: each line carries its syslog priority (sd-daemon(3)) and no timestamp."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from loguru import logger

from tests.test_logs import _reset
from watchdog import logs
from watchdog.logs import configure_logging, for_stderr, stderr_is_journal, syslog_priority

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d")


@pytest.fixture
def journal_log(capsys: pytest.CaptureFixture[str]) -> Iterator[pytest.CaptureFixture[str]]:
    configure_logging(level="TRACE", journal=True)
    yield capsys
    _reset()
    logs._journal = False


@pytest.mark.parametrize(("level", "priority"), [
    ("CRITICAL", 2), ("ERROR", 3), ("WARNING", 4), ("SUCCESS", 5), ("INFO", 6), ("DEBUG", 7),
    ("TRACE", 7)])
def test_levels_map_to_syslog_priorities(level: str, priority: int) -> None:
    assert syslog_priority(logger.level(level).no) == priority


def test_every_line_has_its_priority_and_no_timestamp(journal_log: pytest.CaptureFixture[str]) -> None:
    logger.debug("debugging")
    logger.info("position open")
    logger.warning("redis slow")
    logging.getLogger("some.library").error("from the standard library")
    try:
        raise ValueError("bad frame")
    except ValueError:
        logger.exception("frame rejected")
    lines = journal_log.readouterr().err.splitlines()
    assert [line[:3] for line in lines[:4]] == ["<7>", "<6>", "<4>", "<3>"]
    assert all(re.match(r"<[2-7]>", line) for line in lines), lines
    assert not any(TIMESTAMP.search(line) for line in lines), lines
    traceback = [line for line in lines if "Traceback" in line or "ValueError: bad frame" in line]
    assert len(traceback) == 2
    assert all(line.startswith("<3>") for line in traceback)


def test_json_lines_get_the_prefix_too(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(level="INFO", json=True, journal=True)
    try:
        logger.warning("redis slow")
        line = capsys.readouterr().err.strip()
    finally:
        _reset()
        logs._journal = False
    assert line.startswith('<4>{"text"')


def test_without_the_journal_lines_are_unchanged(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(level="INFO", journal=False)
    try:
        logger.warning("redis slow")
        err = capsys.readouterr().err
    finally:
        _reset()
    assert not err.startswith("<")
    assert TIMESTAMP.match(err)
    assert for_stderr("Error: x") == "Error: x"


def test_cli_error_line_is_prefixed_under_the_journal(journal_log: pytest.CaptureFixture[str]) -> None:
    assert for_stderr("Error: bad configuration") == "<3>Error: bad configuration"


def test_journal_detected_only_when_journal_stream_names_stderr(tmp_path: Path) -> None:
    with (tmp_path / "err").open("w") as err:
        found = os.fstat(err.fileno())
        named = {"JOURNAL_STREAM": f"{found.st_dev}:{found.st_ino}"}
        assert stderr_is_journal(named, fd=err.fileno())
        assert not stderr_is_journal({"JOURNAL_STREAM": f"{found.st_dev}:{found.st_ino + 1}"},
                                     fd=err.fileno()), "inherited by a child whose stderr moved"
        assert not stderr_is_journal({}, fd=err.fileno())
        assert not stderr_is_journal({"JOURNAL_STREAM": "garbage"}, fd=err.fileno())
