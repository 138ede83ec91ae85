"""Throwaway development brokers for tests that need a Kafka of their own (to stop it,
or to secure it): free ports, data under a temporary home, the Maven jars shared with
the default broker home so nothing is fetched again."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from memberstream.cli.devbroker import DevBroker
from memberstream.config import BrokerSettings


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def throwaway_broker(
    home: Path, echo: Callable[[str], None] = lambda _: None, **settings: Any
) -> DevBroker:
    """A (not yet started) development broker on free ports with its data in ``home``."""
    port, controller_port = free_ports(2)
    conf = BrokerSettings(
        home=home, port=port, controller_port=controller_port, start_timeout_s=120, **settings
    )
    return DevBroker(conf, echo=echo, jars_home=BrokerSettings().home)
