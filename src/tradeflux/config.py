"""One settings object: flags > ``TRADEFLUX_*`` environment > config file > defaults.

The config file is TOML (``--config FILE`` or ``TRADEFLUX_CONFIG``)::

    bootstrap = "kafka-1.bank.internal:9093"
    partitions = 12
    replication = 3

    [kafka]                      # any librdkafka setting, passed through as is
    "security.protocol" = "SASL_SSL"
    "sasl.mechanism" = "SCRAM-SHA-512"

librdkafka settings also come from the environment: ``TRADEFLUX_KAFKA_SASL_USERNAME=u``
sets ``sasl.username`` (underscores become dots; lower case).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from tradeflux.errors import ConfigError
from tradeflux.tracing import endpoint_from_env

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"
_SECRET_WORDS = ("password", "secret", "key", "token", "jaas")
_KAFKA_ENV_PREFIX = "TRADEFLUX_KAFKA_"


def _default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "tradeflux"


def _default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tradeflux"


@dataclass(frozen=True)
class Settings:
    """Everything a tradeflux process needs to find its cluster and its files."""

    bootstrap: str = DEFAULT_BOOTSTRAP
    kafka: Mapping[str, str] = field(default_factory=dict)
    partitions: int = 6
    replication: int | None = None  # None: min(3, brokers in the cluster)
    topic_prefix: str = ""
    runtime_dir: Path = field(default_factory=_default_state_dir)
    cache_dir: Path = field(default_factory=_default_cache_dir)
    kafka_version: str | None = None  # None: the version pinned in broker/pom.xml
    broker_heap: str = "512m"
    # How a service instance runs (docs/runtime.md): batches, waits, membership.
    batch_max_records: int = 5000
    batch_max_wait_ms: int = 100
    max_batch_ms: int = 250  # processing per batch at most (or one commit, if longer)
    fetch_wait_ms: int = 10  # how long the broker may hold an input fetch with nothing new
    session_timeout_ms: int = 10000
    cluster_wait_s: float = 300.0  # a transient cluster failure is waited out this long
    group_protocol: str = "classic"  # or "consumer" (KIP-848)
    metrics_host: str = "127.0.0.1"  # where a service serves /metrics, /healthz, /readyz
    # Services (docs/domain-rules.md).
    pnl_throttle_ms: int = 100  # an account's P&L goes out at most this often
    pnl_remark_ms: int = 1000  # every account is re-marked at the latest prices this often
    bar_seconds: int = 5
    bar_grace_seconds: int = 2
    hop_seconds: int = 60  # hopping bars: this long, one every hop_advance_seconds
    hop_advance_seconds: int = 15
    session_gap_seconds: int = 30  # an account's sessions: bursts separated by this gap
    session_grace_seconds: int = 5
    tick_ms: int = 1000  # clock ticks into every partition of a ticked topic
    report_deadline_seconds: int = 60  # a regulatory report later than this is flagged
    entity_leis: str = ""  # "Legal entity=LEI;..." over the sample entities' LEIs
    settlement_cutoffs: str = ""  # "CCY=MIC@HH:MM,..." over domain/cutoffs.py's defaults
    settlement_retention_days: int = 7  # obligations kept after their settlement date
    allocation_wait_seconds: int = 60  # an allocation instruction waits this for its fills
    affirm_deadlines: str = ""  # "MIC=HH:MM,*=+90s,..." over the SEC 15c6-2 defaults
    max_notional: str = ""  # per-currency notional bounds, "JPY=1E+16,*=1E+14" (domain/bounds.py)
    risk_limits_check_ms: int = 200  # how soon a change of refdata.limits is re-evaluated
    # HTTP edges (gateway, query API, every /metrics): see tradeflux.security
    auth: str = "token"  # token: bearer JWTs and/or static tokens; none: off (loopback only)
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwks_file: Path | None = None
    jwks_url: str | None = None
    tokens_file: Path | None = None
    allowed_hosts: str = "127.0.0.1,localhost,::1"  # Host header names; * turns the check off
    allowed_origins: str = ""  # other origins that may call (scheme://host:port,...)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None  # set: a client certificate from this CA is required
    allow_insecure_bind: bool = False  # --auth none or plaintext FIX off loopback, knowingly
    scrape_token_file: Path | None = None  # the bearer token this process sends to /metrics
    # A trade's trace (tradeflux.tracing): off unless an OTLP/HTTP endpoint is set (or
    # OpenTelemetry's OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT); the share of traces recorded.
    otlp_endpoint: str | None = None
    trace_sample_ratio: float = 1.0

    def client_config(self, **overrides: Any) -> dict[str, Any]:
        """Return a librdkafka configuration for this cluster, with ``overrides`` on top."""
        conf: dict[str, Any] = {"bootstrap.servers": self.bootstrap, **self.kafka}
        conf.update(overrides)
        return conf

    def describe(self) -> dict[str, str]:
        """Return the settings as printable strings, secrets redacted."""
        out: dict[str, str] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "kafka":
                for k, v in sorted(value.items()):
                    secret = any(word in k.lower() for word in _SECRET_WORDS)
                    out[f"kafka.{k}"] = "***" if secret else str(v)
            else:
                out[f.name] = "" if value is None else str(value)
        return out


_ENV_FIELDS: dict[str, str] = {
    "TRADEFLUX_BOOTSTRAP": "bootstrap",
    "TRADEFLUX_PARTITIONS": "partitions",
    "TRADEFLUX_REPLICATION": "replication",
    "TRADEFLUX_TOPIC_PREFIX": "topic_prefix",
    "TRADEFLUX_RUNTIME_DIR": "runtime_dir",
    "TRADEFLUX_CACHE_DIR": "cache_dir",
    "TRADEFLUX_KAFKA_VERSION": "kafka_version",
    "TRADEFLUX_BROKER_HEAP": "broker_heap",
    **{
        f"TRADEFLUX_{name.upper()}": name
        for name in (
            "batch_max_records",
            "batch_max_wait_ms",
            "max_batch_ms",
            "fetch_wait_ms",
            "session_timeout_ms",
            "cluster_wait_s",
            "group_protocol",
            "metrics_host",
            "pnl_throttle_ms",
            "pnl_remark_ms",
            "bar_seconds",
            "bar_grace_seconds",
            "hop_seconds",
            "hop_advance_seconds",
            "session_gap_seconds",
            "session_grace_seconds",
            "tick_ms",
            "report_deadline_seconds",
            "entity_leis",
            "settlement_cutoffs",
            "settlement_retention_days",
            "allocation_wait_seconds",
            "affirm_deadlines",
            "max_notional",
            "risk_limits_check_ms",
        )
    },  # fmt: skip
    "TRADEFLUX_AUTH": "auth",
    "TRADEFLUX_JWT_ISSUER": "jwt_issuer",
    "TRADEFLUX_JWT_AUDIENCE": "jwt_audience",
    "TRADEFLUX_JWKS_FILE": "jwks_file",
    "TRADEFLUX_JWKS_URL": "jwks_url",
    "TRADEFLUX_TOKENS_FILE": "tokens_file",
    "TRADEFLUX_ALLOWED_HOSTS": "allowed_hosts",
    "TRADEFLUX_ALLOWED_ORIGINS": "allowed_origins",
    "TRADEFLUX_TLS_CERT": "tls_cert",
    "TRADEFLUX_TLS_KEY": "tls_key",
    "TRADEFLUX_TLS_CLIENT_CA": "tls_client_ca",
    "TRADEFLUX_ALLOW_INSECURE_BIND": "allow_insecure_bind",
    "TRADEFLUX_SCRAPE_TOKEN_FILE": "scrape_token_file",
    "TRADEFLUX_OTLP_ENDPOINT": "otlp_endpoint",
    "TRADEFLUX_TRACE_SAMPLE_RATIO": "trace_sample_ratio",
}
_WHOLE_NUMBERS = {  # name: smallest value
    "partitions": 1,
    "replication": 1,
    "batch_max_records": 1,
    "batch_max_wait_ms": 0,
    "max_batch_ms": 0,
    "fetch_wait_ms": 0,
    "session_timeout_ms": 1000,
    "pnl_throttle_ms": 0,
    "pnl_remark_ms": 10,
    "bar_seconds": 1,
    "bar_grace_seconds": 0,
    "hop_seconds": 1,
    "hop_advance_seconds": 1,
    "session_gap_seconds": 1,
    "session_grace_seconds": 0,
    "tick_ms": 10,
    "report_deadline_seconds": 0,
    "settlement_retention_days": 0,
    "allocation_wait_seconds": 1,
    "risk_limits_check_ms": 10,
}
_CHOICES = {"group_protocol": ("classic", "consumer")}
_PATH_FIELDS = frozenset(
    {"runtime_dir", "cache_dir", "jwks_file", "tokens_file", "tls_cert", "tls_key",
     "tls_client_ca", "scrape_token_file"}
)  # fmt: skip
AUTH_MODES = ("token", "none")


def _coerce(name: str, raw: Any, origin: str) -> Any:
    """Turn a raw value from ``origin`` into the type of field ``name``, or explain why not."""
    if name in _WHOLE_NUMBERS:
        least = _WHOLE_NUMBERS[name]
        try:
            if isinstance(raw, bool) or not isinstance(raw, int | str):
                raise TypeError(raw)  # TOML's true or 6.5 is no partition count
            value = int(raw)
        except (TypeError, ValueError):
            value = None
        if name.endswith("_seconds") and (value is None or value < least):
            raise ConfigError(
                f"{origin}: {name}={raw!r}: give a whole number of seconds, at least {least}"
            )
        if value is None:
            raise ConfigError(
                f"{origin}: {name} must be a whole number, got {raw!r}; for example {name}=6"
            )
        if value < least:
            raise ConfigError(f"{origin}: {name} must be at least {least}, got {value}")
        return value
    if name == "cluster_wait_s":
        try:
            if isinstance(raw, bool):
                raise TypeError(raw)
            number = float(raw)
        except (TypeError, ValueError):
            raise ConfigError(
                f"{origin}: {name} must be a number of seconds, got {raw!r}"
            ) from None
        if not number >= 1:
            raise ConfigError(f"{origin}: {name} must be at least 1 second, got {raw!r}")
        return number
    if name == "trace_sample_ratio":
        try:
            if isinstance(raw, bool):
                raise TypeError(raw)
            ratio = float(raw)
        except (TypeError, ValueError):
            ratio = -1.0
        if not 0.0 <= ratio <= 1.0:
            raise ConfigError(
                f"{origin}: {name} must be a number from 0 to 1 (the share of traces "
                f"recorded), got {raw!r}"
            )
        return ratio
    if name == "otlp_endpoint":
        text = str(raw).strip()
        if not text.startswith(("http://", "https://")):
            raise ConfigError(
                f"{origin}: {name} must be an OTLP/HTTP URL such as "
                f"http://collector:4318/v1/traces, got {raw!r}"
            )
        return text
    if name in _CHOICES:
        if str(raw) not in _CHOICES[name]:
            raise ConfigError(
                f"{origin}: {name} must be one of {', '.join(_CHOICES[name])}, got {raw!r}"
            )
        return str(raw)
    if name in _PATH_FIELDS:
        return Path(str(raw)).expanduser()
    if name == "allow_insecure_bind":
        if isinstance(raw, bool):
            return raw
        text = str(raw).strip().lower()
        if text not in ("1", "true", "yes", "0", "false", "no"):
            raise ConfigError(f"{origin}: {name} must be true or false, got {raw!r}")
        return text in ("1", "true", "yes")
    if name == "auth":
        text = str(raw).strip().lower()
        if text not in AUTH_MODES:
            raise ConfigError(
                f"{origin}: auth must be one of {', '.join(AUTH_MODES)}, got {raw!r}; "
                "token verifies bearer tokens, none turns authentication off (loopback only)"
            )
        return text
    if name == "bootstrap":
        text = str(raw).strip()
        if not text or not all(_is_host_port(part.strip()) for part in text.split(",")):
            raise ConfigError(
                f"{origin}: bootstrap must be host:port[,host:port...], got {raw!r}; "
                "for example 127.0.0.1:9092"
            )
        return text
    return str(raw)


def _is_host_port(text: str) -> bool:
    """Tell whether ``text`` is ``host:port`` with a port number from 1 to 65535."""
    host, colon, port = text.rpartition(":")
    return bool(colon and host and port.isascii() and port.isdigit() and 0 < int(port) < 65536)


def load_settings(
    config_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    **flags: Any,
) -> Settings:
    """Build the settings from defaults, then the config file, then the environment, then flags.

    ``flags`` whose value is None were not given and do not override anything.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    kafka: dict[str, str] = {}
    path = config_file or (Path(env["TRADEFLUX_CONFIG"]) if env.get("TRADEFLUX_CONFIG") else None)
    if path is not None:
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(
                f"config file {path} does not exist; pass an existing TOML file"
            ) from None
        except OSError as exc:
            raise ConfigError(
                f"config file {path} cannot be read ({exc.strerror}); pass a readable TOML file"
            ) from None
        except UnicodeDecodeError:
            raise ConfigError(f"config file {path} is not valid TOML: not UTF-8 text") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        known = {f.name for f in fields(Settings)}
        for key, raw in data.items():
            if key == "kafka":
                if not isinstance(raw, dict):
                    raise ConfigError(f"{path}: [kafka] must be a table of librdkafka settings")
                kafka.update({str(k): str(v) for k, v in raw.items()})
            elif key.replace("-", "_") in known:
                name = key.replace("-", "_")
                values[name] = _coerce(name, raw, str(path))
            else:
                raise ConfigError(
                    f"{path}: unknown setting {key!r}; known: {', '.join(sorted(known))}"
                )
    for var, name in _ENV_FIELDS.items():
        if env.get(var):
            values[name] = _coerce(name, env[var], var)
    if "otlp_endpoint" not in values and (otel := endpoint_from_env(env)):
        values["otlp_endpoint"] = _coerce("otlp_endpoint", otel, "OTEL_EXPORTER_OTLP_ENDPOINT")
    for var, raw in env.items():
        if var.startswith(_KAFKA_ENV_PREFIX) and var not in _ENV_FIELDS:
            kafka[var[len(_KAFKA_ENV_PREFIX) :].lower().replace("_", ".")] = raw
    for name, raw in flags.items():
        if raw is not None:
            values[name] = _coerce(name, raw, f"--{name.replace('_', '-')}")
    return replace(Settings(), kafka=kafka, **values)
