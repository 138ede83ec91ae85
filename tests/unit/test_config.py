"""Settings: defaults, env vars, the TOML file, precedence and validation messages."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from memberstream.config import (
    CONFIG_ENV,
    Settings,
    TopicNames,
    config_error,
    load_settings,
)
from memberstream.domain.membership import TierRule
from memberstream.errors import ConfigError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting may come from the environment the tests happen to run in."""
    for name in list(os.environ):
        if name.upper().startswith("MEMBERSTREAM_"):
            monkeypatch.delenv(name)
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)


CONFIG_TOML = """\
partitions = 8
app_id = "from-file"
store = "memory://"

[topics]
clicks = "file.clicks"

[membership]
grace_days = 10
window_days = 180
tiers = [
  { name = "basic", min_monetary = 0, min_frequency = 0 },
  { name = "vip", min_monetary = 500, min_frequency = 3 },
]

[batch]
max_batch = 64
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "memberstream.toml"
    path.write_text(CONFIG_TOML)
    return path


# --- defaults ---------------------------------------------------------------------------


def test_defaults() -> None:
    s = Settings()
    assert s.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert s.app_id == "memberstream"
    assert s.partitions == 4
    assert s.replication_factor == 1
    assert s.store == "rocksdb://"
    assert s.data_dir == Path(".memberstream")
    assert s.session_timeout_s == 30.0
    assert s.topics == TopicNames()
    assert s.topics.inputs() == ["events.clicks", "events.purchases", "events.reviews"]
    assert s.topics.compacted() == {
        "member.profiles",
        "product.review-summaries",
        "model.updates",
    }
    assert len(s.topics.all()) == 12
    assert s.topics.ingest() == [*s.topics.inputs(), "labels.feedback"]
    assert s.topics.consumed() == [*s.topics.ingest(), "memberstream.product-reviews"]
    assert s.topics.member_interest_tiers == "member.interest-tiers"
    assert s.membership.window_days == 365.0
    assert s.membership.grace_days == 30.0
    assert [t.name for t in s.membership.tiers] == ["bronze", "silver", "gold", "platinum"]
    assert s.membership.tiers[1] == TierRule(name="silver", min_monetary=100, min_frequency=2)
    assert s.batch.max_batch == 500
    assert s.broker.port == 9092


def test_default_tiers_are_not_shared_between_instances() -> None:
    a, b = Settings(), Settings()
    a.membership.tiers.pop()
    assert len(b.membership.tiers) == 4


def test_load_settings_without_file_leaves_config_env_unset() -> None:
    s = load_settings()
    assert s == Settings()
    assert CONFIG_ENV not in os.environ


def test_keyword_overrides_win_over_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMBERSTREAM_PARTITIONS", "6")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "env:9092")
    s = load_settings(partitions=2, kafka_bootstrap_servers="kw:9092")
    assert s.partitions == 2
    assert s.kafka_bootstrap_servers == "kw:9092"


# --- environment variables --------------------------------------------------------------


def test_prefixed_env_vars(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMBERSTREAM_APP_ID", "from-env")
    monkeypatch.setenv("MEMBERSTREAM_PARTITIONS", "12")
    monkeypatch.setenv("MEMBERSTREAM_STORE", "memory://")
    monkeypatch.setenv("MEMBERSTREAM_DATA_DIR", "/var/lib/ms")
    s = Settings()
    assert s.app_id == "from-env"
    assert s.partitions == 12
    assert s.store == "memory://"
    assert s.data_dir == Path("/var/lib/ms")


def test_nested_env_vars_use_double_underscore(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMBERSTREAM_MEMBERSHIP__GRACE_DAYS", "14")
    monkeypatch.setenv("MEMBERSTREAM_TOPICS__CLICKS", "x")
    monkeypatch.setenv("MEMBERSTREAM_BATCH__MAX_WAIT_S", "0.2")
    monkeypatch.setenv("MEMBERSTREAM_BROKER__PORT", "19092")
    s = Settings()
    assert s.membership.grace_days == 14.0
    assert s.topics.clicks == "x"
    assert s.batch.max_wait_s == 0.2
    assert s.broker.port == 19092
    # siblings of a nested override keep their defaults
    assert s.membership.window_days == 365.0
    assert len(s.membership.tiers) == 4
    assert s.topics.purchases == "events.purchases"
    assert s.batch.max_batch == 500


def test_nested_env_var_json_value(monkeypatch: pytest.MonkeyPatch) -> None:
    tiers = (
        '[{"name": "free", "min_monetary": 0, "min_frequency": 0},'
        ' {"name": "paid", "min_monetary": 50, "min_frequency": 1}]'
    )
    monkeypatch.setenv("MEMBERSTREAM_MEMBERSHIP__TIERS", tiers)
    s = Settings()
    assert [t.name for t in s.membership.tiers] == ["free", "paid"]
    assert s.membership.tiers[1].min_monetary == 50


def test_bare_kafka_bootstrap_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-1:9092,kafka-2:9092")
    assert Settings().kafka_bootstrap_servers == "kafka-1:9092,kafka-2:9092"


def test_prefixed_kafka_bootstrap_servers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMBERSTREAM_KAFKA_BOOTSTRAP_SERVERS", "prefixed:9092")
    assert Settings().kafka_bootstrap_servers == "prefixed:9092"


def test_bad_env_value_names_the_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMBERSTREAM_MEMBERSHIP__GRACE_DAYS", "soon")
    with pytest.raises(ValidationError) as info:
        Settings()
    assert "membership.grace_days" in str(info.value)


# --- the TOML file ----------------------------------------------------------------------


def test_toml_file(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = load_settings(config_file=config_file)
    assert CONFIG_ENV not in os.environ  # the file applied to this call only
    assert Settings().partitions != 8
    assert s.partitions == 8
    assert s.app_id == "from-file"
    assert s.store == "memory://"
    assert s.topics.clicks == "file.clicks"
    assert s.topics.purchases == "events.purchases"  # not in the file: default
    assert s.membership.grace_days == 10.0
    assert s.membership.window_days == 180.0
    assert s.membership.tiers == [
        TierRule(name="basic", min_monetary=0, min_frequency=0),
        TierRule(name="vip", min_monetary=500, min_frequency=3),
    ]
    assert s.batch.max_batch == 64
    assert s.batch.max_wait_s == 0.05
    assert s.kafka_bootstrap_servers == "127.0.0.1:9092"


def test_toml_file_named_by_config_env(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CONFIG_ENV, str(config_file))
    s = Settings()
    assert s.partitions == 8
    assert [t.name for t in s.membership.tiers] == ["basic", "vip"]


def test_env_overrides_file(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMBERSTREAM_PARTITIONS", "3")
    monkeypatch.setenv("MEMBERSTREAM_MEMBERSHIP__GRACE_DAYS", "14")
    monkeypatch.setenv("MEMBERSTREAM_TOPICS__CLICKS", "env.clicks")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "env-kafka:9092")
    s = load_settings(config_file=config_file)
    assert s.partitions == 3
    assert s.membership.grace_days == 14.0
    assert s.topics.clicks == "env.clicks"
    assert s.kafka_bootstrap_servers == "env-kafka:9092"
    # what the env does not set still comes from the file, nested fields included
    assert s.app_id == "from-file"
    assert s.membership.window_days == 180.0
    assert [t.name for t in s.membership.tiers] == ["basic", "vip"]
    assert s.batch.max_batch == 64


def test_keyword_overrides_win_over_file(
    config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = load_settings(config_file=config_file, partitions=1)
    assert s.partitions == 1
    assert s.app_id == "from-file"


def test_missing_config_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nope" / "settings.toml"
    with pytest.raises(FileNotFoundError) as info:
        load_settings(config_file=missing)
    assert str(missing) in str(info.value)


def test_missing_config_file_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "gone.toml"
    monkeypatch.setenv(CONFIG_ENV, str(missing))
    with pytest.raises(FileNotFoundError, match=r"gone\.toml"):
        Settings()


def test_config_path_that_is_a_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path))):
        load_settings(config_file=tmp_path)


def test_unknown_key_in_file_is_rejected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "typo.toml"
    path.write_text("partitons = 3\n")
    with pytest.raises(ValidationError, match="partitons"):
        load_settings(config_file=path)


def test_invalid_value_in_file_names_the_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[batch]\nmax_batch = 0\n")
    with pytest.raises(ValidationError) as info:
        load_settings(config_file=path)
    assert "batch.max_batch" in str(info.value)


# --- validation -------------------------------------------------------------------------


def test_unknown_store_is_rejected() -> None:
    with pytest.raises(ValidationError) as info:
        Settings(store="redis://")
    message = str(info.value)
    assert "store" in message
    assert "redis://" in message


def test_unknown_store_from_env_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMBERSTREAM_STORE", "redis://localhost")
    with pytest.raises(ValidationError, match="store must be rocksdb:// or memory://"):
        Settings()


@pytest.mark.parametrize("store", ["memory://", "rocksdb://", "rocksdb:///var/lib/x"])
def test_known_stores_are_accepted(store: str) -> None:
    assert Settings(store=store).store == store


@pytest.mark.parametrize(
    ("field", "value"),
    [("partitions", 0), ("partitions", -1), ("replication_factor", 0), ("session_timeout_s", 5)],
)
def test_out_of_range_numbers_name_the_field(field: str, value: int) -> None:
    with pytest.raises(ValidationError) as info:
        Settings(**{field: value})
    errors = info.value.errors()
    assert [e["loc"] for e in errors] == [(field,)]
    assert field in str(info.value)


def test_partitions_zero_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMBERSTREAM_PARTITIONS", "0")
    with pytest.raises(ValidationError) as info:
        Settings()
    assert "partitions" in str(info.value)
    assert "greater than 0" in str(info.value)


def _tiers(*rows: tuple[str, float, int]) -> dict[str, object]:
    return {"tiers": [{"name": n, "min_monetary": m, "min_frequency": f} for n, m, f in rows]}


def test_tiers_not_ascending_are_rejected() -> None:
    membership = _tiers(("a", 0, 0), ("b", 100, 5), ("c", 50, 6))
    with pytest.raises(ValidationError) as info:
        Settings(membership=membership)
    message = str(info.value)
    assert "membership.tiers" in message
    assert "tier c must not need less than b" in message


def test_tiers_with_fewer_orders_than_the_tier_below_are_rejected() -> None:
    membership = _tiers(("a", 0, 0), ("b", 100, 5), ("c", 200, 4))
    with pytest.raises(ValidationError, match="tier c must not need less than b"):
        Settings(membership=membership)


def test_first_tier_must_have_zero_thresholds() -> None:
    with pytest.raises(ValidationError, match=r"first tier \(a\) must have zero thresholds"):
        Settings(membership=_tiers(("a", 10, 0), ("b", 100, 5)))


def test_tier_names_must_be_unique() -> None:
    with pytest.raises(ValidationError, match="tier names must be unique"):
        Settings(membership=_tiers(("a", 0, 0), ("a", 100, 5)))


def test_empty_tier_list_is_rejected() -> None:
    with pytest.raises(ValidationError, match="at least one tier"):
        Settings(membership={"tiers": []})


def test_negative_tier_threshold_names_the_field() -> None:
    with pytest.raises(ValidationError) as info:
        Settings(membership=_tiers(("a", 0, 0), ("b", -1, 5)))
    assert "min_monetary" in str(info.value)


def test_unknown_top_level_setting_is_rejected() -> None:
    with pytest.raises(ValidationError, match="no_such_setting"):
        Settings(no_such_setting=1)


def test_equal_tier_thresholds_are_allowed() -> None:
    s = Settings(membership=_tiers(("a", 0, 0), ("b", 100, 2), ("c", 100, 2)))
    assert [t.name for t in s.membership.tiers] == ["a", "b", "c"]


# --- unknown settings: env vars, every section of the file, where a bad value came from ---


def test_misspelled_nested_env_var_is_refused_with_suggestion(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MEMBERSTREAM_BATCH__MAX_BACH", "100")
    with pytest.raises(ConfigError) as info:
        Settings()
    message = str(info.value)
    assert "MEMBERSTREAM_BATCH__MAX_BACH" in message
    assert "did you mean MEMBERSTREAM_BATCH__MAX_BATCH?" in message
    assert info.value.exit_code == 78
    assert "double underscore" in (info.value.hint or "")


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [
        ("MEMBERSTREAM_PARTITONS", "MEMBERSTREAM_PARTITIONS"),
        ("MEMBERSTREAM_BATCH_MAX_BATCH", "MEMBERSTREAM_BATCH__MAX_BATCH"),
        ("MEMBERSTREAM_INFERENCE__ENCODER__MODELDIR", "MEMBERSTREAM_INFERENCE__ENCODER__MODEL_DIR"),
        (
            "MEMBERSTREAM_ANOMALY__CLICK_BURST__WINDOW",
            "MEMBERSTREAM_ANOMALY__CLICK_BURST__WINDOW_S",
        ),
        ("MEMBERSTREAM_BROKER__PROT", "MEMBERSTREAM_BROKER__PORT"),
        ("memberstream_topics__clics", "MEMBERSTREAM_TOPICS__CLICKS"),
    ],
)
def test_unknown_env_vars_at_any_depth_are_refused(
    name: str, suggestion: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, "1")
    with pytest.raises(ConfigError, match=f"unknown setting {name} .*did you mean {suggestion}"):
        Settings()


def test_unknown_env_var_without_a_close_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMBERSTREAM_ZZZZZZZZ", "1")
    with pytest.raises(ConfigError) as info:
        Settings()
    assert str(info.value) == "unknown setting MEMBERSTREAM_ZZZZZZZZ (env var)"


def test_every_unknown_env_var_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMBERSTREAM_PARTITONS", "1")
    monkeypatch.setenv("MEMBERSTREAM_STORRE", "memory://")
    with pytest.raises(ConfigError) as info:
        Settings()
    lines = str(info.value).splitlines()
    assert lines[0] == "2 settings are wrong:"
    assert "MEMBERSTREAM_PARTITONS" in lines[1] and "MEMBERSTREAM_STORRE" in lines[2]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MEMBERSTREAM_BATCH__MAX_BATCH", "7"),
        ("MEMBERSTREAM_INFERENCE__ENCODER__MODEL_DIR", "/models/x"),
        ("MEMBERSTREAM_ANOMALY__CLICK_BURST__WINDOW_S", "30"),
        ("MEMBERSTREAM_KAFKA__SECURITY_PROTOCOL", "PLAINTEXT"),
        ("MEMBERSTREAM_KAFKA_BOOTSTRAP_SERVERS", "k:9092"),
        ("MEMBERSTREAM_STARTUP_TIMEOUT_S", "5"),
        ("MEMBERSTREAM_TOPICS", '{"clicks": "json.clicks"}'),
        ("MEMBERSTREAM_BATCH", '{"max_batch": 9}'),
        ("MEMBERSTREAM_DEBUG", "1"),  # not a setting, but memberstream's own
        ("MEMBERSTREAM_FAILPOINTS", "outputs_sent:3"),  # crash tests' injected faults
        ("memberstream_batch__max_wait_s", "0.5"),  # names are case-insensitive
    ],
)
def test_valid_env_var_names_are_accepted(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, value)
    Settings()


def test_json_section_env_var_is_applied(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMBERSTREAM_TOPICS", '{"clicks": "json.clicks"}')
    monkeypatch.setenv("MEMBERSTREAM_BATCH", '{"max_batch": 9}')
    s = Settings()
    assert s.topics.clicks == "json.clicks"
    assert s.batch.max_batch == 9


def test_unknown_key_in_json_section_env_var_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMBERSTREAM_TOPICS", '{"clicks": "a", "clcks": "b"}')
    with pytest.raises(ValidationError) as info:
        Settings()
    assert "unknown setting topics.clcks; did you mean topics.clicks?" in str(info.value)
    error = config_error(info.value)
    assert str(error) == (
        "unknown setting topics.clcks (from env var MEMBERSTREAM_TOPICS); "
        "did you mean topics.clicks?"
    )
    assert error.hint == "fix or remove it in the env var MEMBERSTREAM_TOPICS"


def test_child_worker_env_round_trips(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """worker_process.settings_env: every section as JSON, accepted and reproduced."""
    from memberstream.streams.worker_process import settings_env

    names = {k: f"ns.{v}" for k, v in TopicNames().model_dump().items()}
    original = Settings(
        topics=TopicNames(**names), partitions=3, store="memory://", data_dir=tmp_path
    )
    original.batch.max_batch = 17
    for name, value in settings_env(original).items():
        monkeypatch.setenv(name, value)
    copy = Settings()
    assert copy.topics == original.topics
    assert copy.batch.max_batch == 17
    assert copy.partitions == 3


@pytest.mark.parametrize(
    ("toml", "name", "suggestion"),
    [
        ("[batch]\nmax_bach = 3\n", "batch.max_bach", "batch.max_batch"),
        ("[topics]\nclics = 'x'\n", "topics.clics", "topics.clicks"),
        ("[inference.encoder]\nmodeldir = '/x'\n", "inference.encoder.modeldir", "model_dir"),
        ("[anomaly.click_burst]\nwindow = 3\n", "anomaly.click_burst.window", "window_s"),
        ("[summary.summarizer]\nmax_pro = 3\n", "summary.summarizer.max_pro", "max_pros"),
        ("[broker]\nprot = 1\n", "broker.prot", "broker.port"),
        ("[kafka]\nsasl_user = 'u'\n", "kafka.sasl_user", "kafka.sasl_username"),
        (
            "[membership]\ntiers = [{name = 'a', min_monetary = 0, min_frequency = 0, x = 1}]\n",
            "membership.tiers.0.x",
            None,
        ),
        ("[interest]\nhalf_life = 3\n", "interest.half_life", "half_life_days"),
    ],
)
def test_unknown_key_in_any_file_section_is_refused(
    toml: str, name: str, suggestion: str | None, tmp_path: Path
) -> None:
    path = tmp_path / "typo.toml"
    path.write_text(toml)
    with pytest.raises(ValidationError) as info:
        load_settings(config_file=path)
    message = str(config_error(info.value, path))
    assert message.startswith(f"unknown setting {name} (from config file {path})"), message
    if suggestion:
        assert f"did you mean {suggestion.split('.')[0]}" in message or suggestion in message


def test_every_section_model_forbids_unknown_keys() -> None:
    """Sections refuse unknown keys on their own too (built directly, not via Settings)."""
    from pydantic import BaseModel

    from memberstream.config import BrokerSettings
    from memberstream.config.settings import _item_model, _section_model

    def sections(model: type[BaseModel]) -> set[type[BaseModel]]:
        found = set()
        for field in model.model_fields.values():
            sub = _section_model(field.annotation) or _item_model(field.annotation)
            if sub is not None:
                found |= {sub, *sections(sub)}
        return found

    lax = {
        m.__name__
        for m in sections(Settings)
        if m.model_config.get("extra") != "forbid" and m is not BrokerSettings
    }
    assert not lax  # BrokerSettings is covered by Settings' own check (see above)


def test_invalid_value_names_setting_and_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEMBERSTREAM_BATCH__MAX_BATCH", "0")
    with pytest.raises(ValidationError) as info:
        Settings()
    error = config_error(info.value)
    assert str(error) == (
        "invalid setting batch.max_batch (from env var MEMBERSTREAM_BATCH__MAX_BATCH): "
        "Input should be greater than 0 (got '0')"
    )
    assert error.exit_code == 78


def test_invalid_value_names_setting_and_file(config_file: Path) -> None:
    config_file.write_text("store = 'redis://'\n")
    with pytest.raises(ValidationError) as info:
        load_settings(config_file=config_file)
    error = config_error(info.value, config_file)
    assert str(error) == (
        f"invalid setting store (from config file {config_file}): "
        "store must be rocksdb:// or memory://, got 'redis://'"
    )
    assert error.hint == f"fix or remove it in the config file {config_file}"


def test_section_level_error_names_the_env_vars_of_the_section(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MEMBERSTREAM_KAFKA__SECURITY_PROTOCOL", "SASL_SSL")
    with pytest.raises(ValidationError) as info:
        Settings()
    message = str(config_error(info.value))
    assert message.startswith(
        "invalid setting kafka (from env var MEMBERSTREAM_KAFKA__SECURITY_PROTOCOL): "
    )
    assert "needs sasl_username" in message


def test_secret_values_are_not_echoed_in_errors() -> None:
    from memberstream.config.settings import _shown_input

    assert _shown_input(("kafka", "sasl_password"), "hunter2") == ""
    assert _shown_input(("kafka", "ssl_key_password"), "hunter2") == ""
    assert _shown_input(("batch", "max_batch"), "0") == " (got '0')"


def test_startup_timeout_default_and_range() -> None:
    assert Settings().startup_timeout_s == 30.0
    with pytest.raises(ValidationError):
        Settings(startup_timeout_s=0)
