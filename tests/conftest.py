"""Shared by every test directory."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _logging_left_as_found() -> Iterator[None]:
    """A command run in-process (click's runner) configures the root logger for the rest
    of the process; restore it, so that a later command's output does not depend on
    which tests ran before."""
    root = logging.getLogger()
    kafka = logging.getLogger("aiokafka")
    saved = (list(root.handlers), root.level, list(kafka.handlers), kafka.level)
    yield
    root.handlers[:], kafka.handlers[:] = saved[0], saved[2]
    root.setLevel(saved[1])
    kafka.setLevel(saved[3])
