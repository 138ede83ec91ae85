"""Settings of the local development broker (``memberstream broker``,
:mod:`memberstream.cli.devbroker`)."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, Field


class BrokerSettings(BaseModel):
    """The local development broker (``memberstream broker``)."""

    kafka_version: str = "3.9.2"
    scala_version: str = "2.13"
    home: Path = Path(os.path.expanduser("~/.cache/memberstream/broker"))
    host: str = "127.0.0.1"
    port: int = 9092
    controller_port: int = 9093
    heap: str = "768m"
    start_timeout_s: float = 90.0
    secure: bool = Field(
        False,
        description="TLS + SASL/SCRAM + ACLs on the client port (certificates, users and "
        "passwords generated under home); plaintext when false",
    )
    app_users: list[str] = Field(
        default_factory=lambda: ["memberstream"],
        description="secure mode: SCRAM users made at storage format time besides the super "
        "user admin, each granted the app's ACLs (topic and group prefixes)",
    )
    acl_topic_prefixes: list[str] = Field(
        default_factory=lambda: ["events.", "labels.", "member.", "product.", "memberstream"],
        description="secure mode: topic name prefixes the app users may read, write, "
        "create and describe",
    )
    acl_group_prefixes: list[str] = Field(
        default_factory=lambda: ["memberstream"],
        description="secure mode: consumer group prefixes the app users may join",
    )
