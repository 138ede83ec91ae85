"""One settings object for the whole tool.

Precedence, highest first: keyword arguments, environment variables
(``MEMBERSTREAM_`` prefix, nested fields with ``__``; the bootstrap servers also
as bare ``KAFKA_BOOTSTRAP_SERVERS``, which wins over the prefixed name), a TOML
file named by ``--config`` or ``MEMBERSTREAM_CONFIG``, then the defaults (here and
in each section's class; see :mod:`memberstream.config`).

An unknown or misspelled setting is refused wherever it comes from (a
``MEMBERSTREAM_*`` variable, a key in any section of the file, a keyword), with
the closest valid name; :func:`config_error` turns a validation error into one
line per setting that names where the value came from (env var or file).
"""

from __future__ import annotations

import difflib
import os
import tomllib
import types
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic import (
    AliasChoices,
    BaseModel,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from memberstream.config.broker import BrokerSettings
from memberstream.config.kafka import KafkaSecuritySettings
from memberstream.config.learning import LearningSettings
from memberstream.config.runtime import (
    BatchSettings,
    DeadLetterSettings,
    LoggingSettings,
    MetricsSettings,
    RocksDBSettings,
    TopicNames,
)
from memberstream.domain.anomaly.settings import AnomalySettings
from memberstream.domain.interest import InterestSettings
from memberstream.domain.membership import MembershipSettings
from memberstream.domain.summaries.review_buffer import SummarySettings
from memberstream.errors import ConfigError
from memberstream.ml.settings import EncoderCalibration, InferenceSettings, read_manifest_fields

CONFIG_ENV = "MEMBERSTREAM_CONFIG"


class Settings(BaseSettings):
    """Everything memberstream reads from its environment."""

    model_config = SettingsConfigDict(
        env_prefix="MEMBERSTREAM_",
        env_nested_delimiter="__",
        extra="forbid",
        populate_by_name=True,
    )

    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092",
        validation_alias=AliasChoices(
            "kafka_bootstrap_servers",
            "MEMBERSTREAM_KAFKA_BOOTSTRAP_SERVERS",
            "KAFKA_BOOTSTRAP_SERVERS",
        ),
    )
    kafka: KafkaSecuritySettings = Field(
        default_factory=KafkaSecuritySettings,
        description="connection security: TLS, SASL (PLAIN, SCRAM); secrets never printed",
    )
    app_id: str = "memberstream"
    partitions: int = Field(4, gt=0)
    replication_factor: int = Field(1, gt=0)
    startup_timeout_s: float = Field(
        30.0,
        gt=0,
        description="how long commands and the worker wait for Kafka to answer at start "
        "before giving up with a clear error",
    )
    session_timeout_s: float = Field(
        30.0, ge=6, description="consumer session timeout: how soon a dead worker's partitions move"
    )
    stall_after_s: float = Field(
        20.0,
        gt=0,
        description="idle this long with input lag left uncommitted: re-read from the "
        "committed offsets (works around a Faust recovery race, faust-streaming#596)",
    )
    store: str = Field("rocksdb://", description="faust table store: rocksdb:// or memory://")
    rocksdb: RocksDBSettings = Field(default_factory=RocksDBSettings)
    data_dir: Path = Path(".memberstream")
    dedupe_ids_per_member: int = Field(
        512, gt=0, description="recent event ids kept per member to drop duplicates"
    )
    shutdown_timeout_s: float = Field(
        30.0, gt=0, description="after SIGTERM, the worker exits within this time whatever hangs"
    )
    topics: TopicNames = Field(default_factory=TopicNames)
    dead_letters: DeadLetterSettings = Field(default_factory=DeadLetterSettings)
    membership: MembershipSettings = Field(default_factory=MembershipSettings)
    batch: BatchSettings = Field(default_factory=BatchSettings)
    inference: InferenceSettings = Field(default_factory=InferenceSettings)
    interest: InterestSettings = Field(default_factory=InterestSettings)
    anomaly: AnomalySettings = Field(default_factory=AnomalySettings)
    summary: SummarySettings = Field(default_factory=SummarySettings)
    broker: BrokerSettings = Field(default_factory=BrokerSettings)
    learning: LearningSettings = Field(default_factory=LearningSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)

    @model_validator(mode="before")
    @classmethod
    def _no_unknown_settings(cls, data: Any) -> Any:
        """Refuse a key no section has (a typo in the file, a stray keyword), naming it."""
        unknown = unknown_settings(cls, data)
        if unknown:
            raise PydanticCustomError(
                "unknown_setting",
                "{message}",
                {"message": "; ".join(_unknown_text(n, c) for n, c in unknown), "names": unknown},
            )
        return data

    @model_validator(mode="after")
    def _follow_encoder(self) -> Settings:
        """Take the configured encoder's calibrated thresholds for what is not set here.

        Thresholds on cosine similarity depend on the embedding space, so they come with
        the encoder (its manifest's ``calibration``); the taste vector takes the
        encoder's dimension. A value given in a keyword, env var or the file wins.
        """
        if not self.inference.enabled:
            return self
        data = read_manifest_fields(self.inference.encoder.resolved_model_dir())
        if data is None:
            return self
        try:
            calibration = EncoderCalibration.model_validate(data.get("calibration") or {})
        except ValidationError as exc:
            raise ValueError(f"encoder manifest: invalid calibration: {exc}") from None
        values = calibration.setting_paths()
        dim = data.get("dim")
        if isinstance(dim, int) and dim > 0:
            values[("interest", "taste_dim")] = dim
        for path, value in values.items():
            if not _explicit(self, path):
                setattr(self, path[0], _replaced(getattr(self, path[0]), path[1:], value))
        return self

    @field_validator("store")
    @classmethod
    def _store_known(cls, store: str) -> str:
        if not store.startswith(("rocksdb://", "memory://")):
            raise ValueError(f"store must be rocksdb:// or memory://, got {store!r}")
        return store

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        check_env()  # pydantic-settings would silently ignore a misspelled variable
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _config_file.get() or os.environ.get(CONFIG_ENV)
        if path:
            if not Path(path).is_file():
                raise FileNotFoundError(f"config file {path}: no such file")
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    def describe(self) -> dict[str, Any]:
        """Settings as printed at start-up; secrets show as ``**********``."""
        return self.model_dump(mode="json")

    def kafka_client_kwargs(self) -> dict[str, Any]:
        """Bootstrap servers and security arguments for any aiokafka client."""
        return {"bootstrap_servers": self.kafka_bootstrap_servers, **self.kafka.client_kwargs()}


def _explicit(model: BaseModel, path: tuple[str, ...]) -> bool:
    """Whether the setting at ``path`` was given (keyword, env var or file)."""
    for name in path:
        if name not in model.model_fields_set:
            return False
        model = getattr(model, name)
    return True


def _replaced(model: BaseModel, path: tuple[str, ...], value: Any) -> BaseModel:
    """A copy of ``model`` with the field at ``path`` set to ``value`` (validated)."""
    head, rest = path[0], path[1:]
    new = value if not rest else _replaced(getattr(model, head), rest, value)
    data = {**model.__dict__, head: new}
    fields_set = set(model.model_fields_set)
    out = type(model).model_validate(data)
    # Calibrated values are not "given": a later re-check still sees what was explicit.
    object.__setattr__(out, "__pydantic_fields_set__", fields_set)
    return out


_config_file: ContextVar[str | None] = ContextVar("memberstream_config_file", default=None)


def load_settings(config_file: str | os.PathLike[str] | None = None, **overrides: Any) -> Settings:
    """Build settings, optionally from a TOML file (which env vars still override).

    The file applies to this call only; ``MEMBERSTREAM_CONFIG`` names one for every call.
    """
    token = _config_file.set(None if config_file is None else str(config_file))
    try:
        return Settings(**overrides)
    finally:
        _config_file.reset(token)


# --- unknown and invalid settings ------------------------------------------------------------

ENV_PREFIX = "MEMBERSTREAM_"
#: MEMBERSTREAM_* variables that are not settings: the config file, tracebacks on errors
#: (the CLI), injected faults for crash tests (``memberstream.core.failpoints``).
NOT_SETTINGS_ENV = frozenset({CONFIG_ENV, "MEMBERSTREAM_DEBUG", "MEMBERSTREAM_FAILPOINTS"})


def _section_model(annotation: Any) -> type[BaseModel] | None:
    """The settings section a field holds (``X`` or ``X | None``), else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (Union, types.UnionType):
        found = [m for a in get_args(annotation) if (m := _section_model(a)) is not None]
        return found[0] if len(found) == 1 else None
    return None


def _item_model(annotation: Any) -> type[BaseModel] | None:
    """The model of a ``list[X]`` field's items (e.g. membership tiers), else None."""
    if get_origin(annotation) in (list, tuple, set, frozenset):
        args = [a for a in get_args(annotation) if a is not Ellipsis]
        return _section_model(args[0]) if len(args) == 1 else None
    return None


def _accepted_keys(model: type[BaseModel]) -> dict[str, str]:
    """Every key ``model`` accepts (field names and aliases) → field name."""
    keys: dict[str, str] = {}
    for name, field in model.model_fields.items():
        keys[name] = name
        for alias in (field.alias, field.validation_alias):
            if isinstance(alias, str):
                keys[alias] = name
            elif isinstance(alias, AliasChoices):
                keys.update({c: name for c in alias.choices if isinstance(c, str)})
    return keys


def unknown_settings(
    model: type[BaseModel], data: Any, path: tuple[str, ...] = ()
) -> list[tuple[str, str | None]]:
    """(dotted name, closest valid name or None) of each key in ``data``, at any depth,
    that ``model`` and its sections have no field for."""
    if not isinstance(data, Mapping):
        return []
    accepted = _accepted_keys(model)
    found: list[tuple[str, str | None]] = []
    for key, value in data.items():
        if not isinstance(key, str):
            continue
        if key not in accepted:
            close = difflib.get_close_matches(key, list(model.model_fields), n=1, cutoff=0.6)
            found.append((".".join((*path, key)), ".".join((*path, close[0])) if close else None))
            continue
        annotation = model.model_fields[accepted[key]].annotation
        if (section := _section_model(annotation)) is not None:
            found += unknown_settings(section, value, (*path, key))
        elif (item := _item_model(annotation)) is not None and isinstance(value, list | tuple):
            for i, element in enumerate(value):
                found += unknown_settings(item, element, (*path, key, str(i)))
    return found


def _unknown_text(name: str, close: str | None, where: str = "") -> str:
    return f"unknown setting {name}{where}" + (f"; did you mean {close}?" if close else "")


def _one_or_list(lines: list[str]) -> str:
    if len(lines) == 1:
        return lines[0]
    return f"{len(lines)} settings are wrong:\n" + "\n".join(f"  {line}" for line in lines)


def setting_env_names(model: type[BaseModel] | None = None, prefix: str = ENV_PREFIX) -> list[str]:
    """Every environment variable that names a setting or a whole section (JSON)."""
    names: list[str] = []
    for name, field in (model or Settings).model_fields.items():
        env = f"{prefix}{name.upper()}"
        names.append(env)
        if (section := _section_model(field.annotation)) is not None:
            names += setting_env_names(section, f"{env}__")
    return names


def _closest_env(name: str, valid: list[str]) -> str | None:
    """The valid variable most like ``name``, preferring its own section."""
    rest = name.upper().removeprefix(ENV_PREFIX)
    section = rest.split("__")[0]
    stems = [v.removeprefix(ENV_PREFIX) for v in valid]
    same = [s for s in stems if s.startswith(f"{section}__")]
    for pool in (same, stems):
        close = difflib.get_close_matches(rest, pool, n=1, cutoff=0.6)
        if close:
            return ENV_PREFIX + close[0]
    return None


def check_env(environ: Mapping[str, str] | None = None) -> None:
    """Refuse a ``MEMBERSTREAM_*`` variable that names no setting (pydantic-settings would
    ignore it), naming it and the closest valid name."""
    environ = os.environ if environ is None else environ
    valid = setting_env_names()
    known = set(valid) | NOT_SETTINGS_ENV
    unknown = sorted(
        k for k in environ if k.upper().startswith(ENV_PREFIX) and k.upper() not in known
    )
    if not unknown:
        return
    lines = [_unknown_text(name, _closest_env(name, valid), " (env var)") for name in unknown]
    raise ConfigError(
        _one_or_list(lines),
        hint="rename or unset it; nested settings take a double underscore "
        "(MEMBERSTREAM_BATCH__MAX_BATCH=100), a whole section may be JSON "
        '(MEMBERSTREAM_TOPICS=\'{"clicks": "my.clicks"}\')',
    )


def _env_source(loc: tuple[str, ...], environ: Mapping[str, str]) -> str | None:
    """The environment variable that set the setting at ``loc`` (or its whole section)."""
    upper = {k.upper(): k for k in environ}
    if loc and loc[0] == "kafka_bootstrap_servers" and "KAFKA_BOOTSTRAP_SERVERS" in upper:
        return upper["KAFKA_BOOTSTRAP_SERVERS"]
    for depth in range(len(loc), 0, -1):
        name = ENV_PREFIX + "__".join(loc[:depth]).upper()
        if name in upper:
            return upper[name]
    if loc:  # an error about a whole section: the variables that set its fields
        section = ENV_PREFIX + "__".join(loc).upper() + "__"
        inside = sorted(upper[k] for k in upper if k.startswith(section))
        if inside:
            return ", ".join(inside)
    return None


def _in_file(loc: tuple[str, ...], data: Any) -> bool:
    for part in loc:
        if isinstance(data, Mapping) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return False
    return True


def _shown_input(loc: tuple[str, ...], value: Any) -> str:
    secret = any(w in part for part in loc for w in ("password", "secret", "token", "key"))
    if secret or not isinstance(value, str | int | float | bool) or len(str(value)) > 80:
        return ""
    return f" (got {value!r})"


def config_error(
    exc: ValidationError,
    config_file: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> ConfigError:
    """One line per bad setting, naming it and where it came from (env var, file)."""
    environ = os.environ if environ is None else environ
    path = config_file or environ.get(CONFIG_ENV)
    file_data: Any = {}
    if path:
        try:
            file_data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            file_data = {}
    lines: list[str] = []
    sources: list[str] = []

    def source(loc: tuple[str, ...]) -> str:
        env = _env_source(loc, environ)
        if env is not None:
            where = f"env var {env}"
        elif path and _in_file(loc, file_data):
            where = f"config file {path}"
        else:
            return ""
        sources.append(where)
        return f" (from {where})"

    for err in exc.errors():
        if err["type"] == "unknown_setting":
            for name, close in err["ctx"]["names"]:
                lines.append(_unknown_text(name, close, source(tuple(name.split(".")))))
            continue
        loc = tuple(str(p) for p in err["loc"])
        message = str(err["msg"]).removeprefix("Value error, ")
        shown = _shown_input(loc, err.get("input"))
        if shown and repr(err.get("input")) in message:
            shown = ""
        lines.append(
            f"invalid setting {'.'.join(loc) or '(settings)'}{source(loc)}: {message}{shown}"
        )
    where = sorted(set(sources))
    hint = f"fix or remove it in the {' and the '.join(where)}" if where else ConfigError.hint
    return ConfigError(_one_or_list(lines), hint=hint)
