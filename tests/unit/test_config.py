"""Settings: flags > TRADEFLUX_* environment > TOML config file > defaults, and bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradeflux.config import Settings, load_settings
from tradeflux.errors import ConfigError


@pytest.fixture(autouse=True)
def _xdg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Pin the XDG folders the default runtime and cache folders derive from."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def _toml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "tradeflux.toml"
    path.write_text(text)
    return path


def _one_line_error(excinfo: pytest.ExceptionInfo[ConfigError]) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    assert excinfo.value.exit_code == 2
    return message


def test_defaults_apply_when_nothing_is_set(tmp_path: Path) -> None:
    settings = load_settings(env={})

    assert settings == Settings(
        bootstrap="127.0.0.1:9092",
        kafka={},
        partitions=6,
        replication=None,
        topic_prefix="",
        runtime_dir=tmp_path / "state" / "tradeflux",
        cache_dir=tmp_path / "cache" / "tradeflux",
        kafka_version=None,
        broker_heap="512m",
    )


def test_config_file_overrides_defaults(tmp_path: Path) -> None:
    path = _toml(
        tmp_path,
        'bootstrap = "file-host:9093"\npartitions = 3\nreplication = 2\n'
        'topic-prefix = "file."\nruntime_dir = "/srv/tradeflux"\n'
        '[kafka]\n"security.protocol" = "SASL_SSL"\n"linger.ms" = 5\n',
    )

    settings = load_settings(path, env={})

    assert settings.bootstrap == "file-host:9093"
    assert settings.partitions == 3
    assert settings.replication == 2
    assert settings.topic_prefix == "file."
    assert settings.runtime_dir == Path("/srv/tradeflux")
    assert settings.broker_heap == "512m"
    assert dict(settings.kafka) == {"security.protocol": "SASL_SSL", "linger.ms": "5"}


def test_environment_overrides_config_file(tmp_path: Path) -> None:
    path = _toml(tmp_path, 'bootstrap = "file-host:9093"\npartitions = 3\nreplication = 2\n')
    env = {"TRADEFLUX_BOOTSTRAP": "env-host:9094", "TRADEFLUX_PARTITIONS": "4"}

    settings = load_settings(path, env=env)

    assert (settings.bootstrap, settings.partitions, settings.replication) == (
        "env-host:9094",
        4,
        2,
    )


def test_flags_override_environment_and_config_file(tmp_path: Path) -> None:
    path = _toml(tmp_path, 'bootstrap = "file-host:9093"\npartitions = 3\nreplication = 2\n')
    env = {"TRADEFLUX_BOOTSTRAP": "env-host:9094", "TRADEFLUX_PARTITIONS": "4"}

    settings = load_settings(path, env=env, bootstrap="flag-host:9095", partitions=5)

    assert (settings.bootstrap, settings.partitions, settings.replication) == (
        "flag-host:9095",
        5,
        2,
    )


def test_flags_given_as_none_override_nothing() -> None:
    env = {"TRADEFLUX_BOOTSTRAP": "env-host:9094", "TRADEFLUX_TOPIC_PREFIX": "env."}

    settings = load_settings(env=env, bootstrap=None, topic_prefix=None, partitions=None)

    assert (settings.bootstrap, settings.topic_prefix, settings.partitions) == (
        "env-host:9094",
        "env.",
        6,
    )


def test_empty_environment_variable_counts_as_unset() -> None:
    settings = load_settings(env={"TRADEFLUX_BOOTSTRAP": "", "TRADEFLUX_PARTITIONS": ""})

    assert (settings.bootstrap, settings.partitions) == ("127.0.0.1:9092", 6)


def test_config_file_is_found_through_tradeflux_config(tmp_path: Path) -> None:
    path = _toml(tmp_path, "partitions = 9\n")

    settings = load_settings(env={"TRADEFLUX_CONFIG": str(path)})

    assert settings.partitions == 9


def test_kafka_environment_variable_becomes_dotted_lower_case_librdkafka_setting() -> None:
    env = {
        "TRADEFLUX_KAFKA_SASL_USERNAME": "trader",
        "TRADEFLUX_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "TRADEFLUX_KAFKA_VERSION": "4.3.0",
    }

    settings = load_settings(env=env)

    assert dict(settings.kafka) == {"sasl.username": "trader", "security.protocol": "SASL_SSL"}
    assert settings.kafka_version == "4.3.0"


def test_kafka_environment_variable_overrides_config_file_kafka_table(tmp_path: Path) -> None:
    path = _toml(tmp_path, '[kafka]\n"sasl.username" = "from-file"\n"sasl.mechanism" = "PLAIN"\n')

    settings = load_settings(path, env={"TRADEFLUX_KAFKA_SASL_USERNAME": "from-env"})

    assert dict(settings.kafka) == {"sasl.username": "from-env", "sasl.mechanism": "PLAIN"}


def test_client_config_puts_bootstrap_then_kafka_settings_then_overrides() -> None:
    settings = load_settings(
        env={"TRADEFLUX_BOOTSTRAP": "h:1", "TRADEFLUX_KAFKA_LINGER_MS": "5"},
    )

    assert settings.client_config(**{"group.id": "g", "linger.ms": 0}) == {
        "bootstrap.servers": "h:1",
        "linger.ms": 0,
        "group.id": "g",
    }


@pytest.mark.parametrize(
    ("origin", "where"),
    [
        ("flag", "--partitions"),
        ("env", "TRADEFLUX_PARTITIONS"),
        ("file", "tradeflux.toml"),
    ],
)
def test_partitions_that_are_not_a_whole_number_raise_config_error_naming_the_source(
    tmp_path: Path, origin: str, where: str
) -> None:
    with pytest.raises(ConfigError) as excinfo:
        if origin == "flag":
            load_settings(env={}, partitions="abc")
        elif origin == "env":
            load_settings(env={"TRADEFLUX_PARTITIONS": "abc"})
        else:
            load_settings(_toml(tmp_path, 'partitions = "abc"\n'), env={})

    message = _one_line_error(excinfo)
    assert where in message
    assert "partitions must be a whole number, got 'abc'" in message


@pytest.mark.parametrize("toml_value", ["6.5", "true"])
def test_partitions_given_as_toml_float_or_boolean_raise_config_error(
    tmp_path: Path, toml_value: str
) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_settings(_toml(tmp_path, f"partitions = {toml_value}\n"), env={})

    assert "partitions must be a whole number" in _one_line_error(excinfo)


def test_zero_replication_raises_config_error() -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_settings(env={"TRADEFLUX_REPLICATION": "0"})

    assert (
        _one_line_error(excinfo) == "TRADEFLUX_REPLICATION: replication must be at least 1, got 0"
    )


@pytest.mark.parametrize(
    "bootstrap",
    ["kafka-1", "kafka-1:9092,kafka-2", "kafka-1:", ":9092", "kafka-1:abc", "kafka-1:70000", " "],
)
def test_bootstrap_without_host_and_port_raises_config_error(bootstrap: str) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_settings(env={}, bootstrap=bootstrap)

    message = _one_line_error(excinfo)
    assert message.startswith("--bootstrap: bootstrap must be host:port[,host:port...], got ")
    assert repr(bootstrap) in message


def test_bootstrap_accepts_several_brokers_and_ipv6_literals() -> None:
    text = "kafka-1:9092,kafka-2:9092,[::1]:9093"

    assert load_settings(env={}, bootstrap=text).bootstrap == text


def test_unknown_key_in_config_file_raises_config_error_listing_known_ones(
    tmp_path: Path,
) -> None:
    path = _toml(tmp_path, "partitons = 6\n")

    with pytest.raises(ConfigError) as excinfo:
        load_settings(path, env={})

    message = _one_line_error(excinfo)
    assert message.startswith(f"{path}: unknown setting 'partitons'; known: ")
    assert "partitions" in message.split("known: ")[1].split(", ")


def test_invalid_toml_raises_config_error(tmp_path: Path) -> None:
    path = _toml(tmp_path, "partitions = = 6\n[kafka\n")

    with pytest.raises(ConfigError) as excinfo:
        load_settings(path, env={})

    assert _one_line_error(excinfo).startswith(f"config file {path} is not valid TOML: ")


def test_missing_config_file_raises_config_error(tmp_path: Path) -> None:
    path = tmp_path / "absent.toml"

    with pytest.raises(ConfigError) as excinfo:
        load_settings(path, env={})

    assert _one_line_error(excinfo) == (
        f"config file {path} does not exist; pass an existing TOML file"
    )


def test_config_file_that_is_a_folder_raises_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as excinfo:
        load_settings(tmp_path, env={})

    assert _one_line_error(excinfo).startswith(f"config file {tmp_path} cannot be read (")


def test_kafka_entry_that_is_not_a_table_raises_config_error(tmp_path: Path) -> None:
    path = _toml(tmp_path, 'kafka = "SASL_SSL"\n')

    with pytest.raises(ConfigError) as excinfo:
        load_settings(path, env={})

    assert _one_line_error(excinfo) == (f"{path}: [kafka] must be a table of librdkafka settings")


def test_describe_redacts_secrets_and_shows_everything_else() -> None:
    env = {
        "TRADEFLUX_KAFKA_SASL_USERNAME": "trader",
        "TRADEFLUX_KAFKA_SASL_PASSWORD": "hunter2",
        "TRADEFLUX_KAFKA_SSL_KEY_PASSWORD": "keypass",
        "TRADEFLUX_KAFKA_SASL_OAUTHBEARER_CLIENT_SECRET": "oauth-secret",
        "TRADEFLUX_KAFKA_SASL_JAAS_CONFIG": "user=trader password=jaas-pass",
        "TRADEFLUX_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    }

    described = load_settings(env=env, bootstrap="kafka-1:9093").describe()

    assert {k: v for k, v in described.items() if k.startswith("kafka.")} == {
        "kafka.sasl.jaas.config": "***",
        "kafka.sasl.oauthbearer.client.secret": "***",
        "kafka.sasl.password": "***",
        "kafka.sasl.username": "trader",
        "kafka.security.protocol": "SASL_SSL",
        "kafka.ssl.key.password": "***",
    }
    assert described["bootstrap"] == "kafka-1:9093"
    assert described["replication"] == ""
    text = " ".join(described.values())
    for secret in ("hunter2", "keypass", "oauth-secret", "jaas-pass"):
        assert secret not in text


def test_security_settings_follow_the_same_precedence_and_are_checked(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('auth = "none"\ntokens_file = "/etc/tf/tokens.toml"\n')
    from_file = load_settings(config, env={})
    assert (from_file.auth, from_file.tokens_file) == ("none", Path("/etc/tf/tokens.toml"))
    from_env = load_settings(config, env={"TRADEFLUX_AUTH": "token",
                                          "TRADEFLUX_ALLOW_INSECURE_BIND": "yes"})  # fmt: skip
    assert (from_env.auth, from_env.allow_insecure_bind) == ("token", True)
    assert load_settings(config, env={"TRADEFLUX_AUTH": "token"}, auth="none").auth == "none"
    with pytest.raises(ConfigError, match="auth must be one of token, none"):
        load_settings(env={"TRADEFLUX_AUTH": "basic"})
    with pytest.raises(ConfigError, match="allow_insecure_bind must be true or false"):
        load_settings(env={"TRADEFLUX_ALLOW_INSECURE_BIND": "maybe"})
    assert load_settings(env={}).describe()["auth"] == "token"  # on unless said otherwise
