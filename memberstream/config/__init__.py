"""The settings assembly: one :class:`Settings` object for the whole tool.

Sits below the processing core (core modules take :class:`Settings`) and above the
ML runtime and the domain policies, whose settings sections live beside what they
configure (``MembershipSettings`` in :mod:`memberstream.domain.membership`,
``InterestSettings``, ``AnomalySettings``, ``SummarySettings`` in the domain,
``EncoderSettings`` and ``InferenceSettings`` in :mod:`memberstream.ml.settings`).
The sections of the Kafka/Faust wiring are defined here: :mod:`.kafka` (connection
security), :mod:`.runtime` (topics, batching, RocksDB, dead letters) and
:mod:`.broker` (the development broker); :mod:`.settings` assembles them and loads
them from keywords, the environment and a TOML file.
"""

from memberstream.config.broker import BrokerSettings
from memberstream.config.kafka import KafkaSecuritySettings
from memberstream.config.runtime import (
    BatchSettings,
    DeadLetterSettings,
    RocksDBSettings,
    TopicNames,
)
from memberstream.config.settings import (
    CONFIG_ENV,
    ENV_PREFIX,
    NOT_SETTINGS_ENV,
    Settings,
    check_env,
    config_error,
    load_settings,
    setting_env_names,
    unknown_settings,
)

__all__ = [
    "CONFIG_ENV",
    "ENV_PREFIX",
    "NOT_SETTINGS_ENV",
    "BatchSettings",
    "BrokerSettings",
    "DeadLetterSettings",
    "KafkaSecuritySettings",
    "RocksDBSettings",
    "Settings",
    "TopicNames",
    "check_env",
    "config_error",
    "load_settings",
    "setting_env_names",
    "unknown_settings",
]
