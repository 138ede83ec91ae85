"""The pytest plugin (entry point ``pytest11: memberstream``): fixtures over
:mod:`memberstream.testing`. Disable with ``-p no:memberstream``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from memberstream.config import Settings
from memberstream.streams.worker_process import WorkerProcess
from memberstream.testing import Namespace, kafka


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """A real Kafka's bootstrap address for the whole session."""
    yield from kafka()


@pytest.fixture(scope="session")
def memberstream_namespaces(kafka_bootstrap: str) -> Iterator[Namespace]:
    """Makes namespaces; deletes their topics at the end of the session."""
    namespaces = Namespace(kafka_bootstrap)
    yield namespaces
    namespaces.delete_all()


@pytest.fixture
def memberstream_namespace(memberstream_namespaces: Namespace, tmp_path: Path) -> Settings:
    """Settings with topics, groups and state of this test's own, topics created."""
    return memberstream_namespaces.new(tmp_path)


@pytest.fixture
def memberstream_worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """``start(settings, **env)``: a worker subprocess on those settings (its log under
    the test's tmp_path), stopped with SIGTERM at teardown."""
    started: list[WorkerProcess] = []

    def start(settings: Settings, **env: str) -> WorkerProcess:
        log = tmp_path / f"worker-{len(started) + 1}.log"
        worker = WorkerProcess(settings, log, env=env or None).start()
        started.append(worker)
        worker.wait_alive(1.0)
        return worker

    yield start
    for worker in started:
        worker.stop()
