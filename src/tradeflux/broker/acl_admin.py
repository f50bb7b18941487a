"""The Kafka admin calls of access control: SCRAM credentials and ACLs, with plain types in and out.

Every confluent-kafka call of ``tradeflux acls`` and ``tradeflux broker start --sasl`` is
here (until the runtime's Kafka boundary takes them): :func:`upsert_scram_users`,
:func:`create_acls`, :func:`describe_acls`. Each waits for the cluster's answer and
turns a failure into a one-line :class:`AclAdminError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialUpsertion,
)

from tradeflux.broker.admin import admin_client
from tradeflux.broker.errors import BrokerError
from tradeflux.config import Settings

SCRAM_ITERATIONS = 8192


class AclAdminError(BrokerError):
    """The cluster refused or did not answer an ACL or SCRAM request."""


class Acl(NamedTuple):
    """One ALLOW ACL: ``principal`` may ``operation`` on a resource (kafka-acls.sh's names).

    ``resource_type``: topic, group, transactional_id or cluster; ``pattern``: literal or
    prefixed; ``operation``: read, write, create, describe, ...
    """

    principal: str
    resource_type: str
    resource_name: str
    pattern: str
    operation: str
    host: str = "*"


def _binding(acl: Acl) -> AclBinding:
    return AclBinding(
        ResourceType[acl.resource_type.upper()],
        acl.resource_name,
        ResourcePatternType[acl.pattern.upper()],
        acl.principal,
        acl.host,
        AclOperation[acl.operation.upper()],
        AclPermissionType.ALLOW,
    )


def _name(value: object) -> str:
    """Return the lower-case name of a confluent-kafka enum member (typed as str or int too)."""
    return str(getattr(value, "name", value)).lower()


def _acl(binding: AclBinding) -> Acl:
    return Acl(
        binding.principal,
        _name(binding.restype),
        binding.name,
        _name(binding.resource_pattern_type),
        _name(binding.operation),
        binding.host,
    )


def _why(exc: BaseException) -> str:
    if isinstance(exc, KafkaException) and exc.args:
        err = exc.args[0]
        return f"{err.name()}: {err.str()}" if hasattr(err, "name") else str(err)
    return str(exc)


def upsert_scram_users(
    settings: Settings, users: Mapping[str, str], timeout_s: float = 30.0
) -> None:
    """Create or update the SCRAM-SHA-512 credential of each ``user -> password``."""
    if not users:
        return
    admin = admin_client(settings)
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
    changes: list[UserScramCredentialAlteration] = [
        UserScramCredentialUpsertion(u, info, p.encode()) for u, p in users.items()
    ]
    futures = admin.alter_user_scram_credentials(changes, request_timeout=timeout_s)
    for user, future in futures.items():
        try:
            future.result(timeout=timeout_s)
        except Exception as exc:  # noqa: BLE001 - KafkaException or a timeout: one line either way
            raise AclAdminError(f"creating SCRAM user {user} failed ({_why(exc)})") from None


def create_acls(settings: Settings, acls: Sequence[Acl], timeout_s: float = 30.0) -> int:
    """Create every ACL (an existing one is no error); return how many were sent."""
    if not acls:
        return 0
    admin = admin_client(settings)
    futures = admin.create_acls([_binding(a) for a in acls], request_timeout=timeout_s)
    for binding, future in futures.items():
        try:
            future.result(timeout=timeout_s)
        except Exception as exc:  # noqa: BLE001
            raise AclAdminError(
                f"creating the ACL {_acl(binding)} failed ({_why(exc)}); the command runs as "
                "an admin of the cluster (TRADEFLUX_KAFKA_SASL_USERNAME...)"
            ) from None
    return len(acls)


def describe_acls(
    settings: Settings, principal: str | None = None, timeout_s: float = 30.0
) -> list[Acl]:
    """Return the cluster's ALLOW ACLs (of ``principal`` only, if given), sorted."""
    admin = admin_client(settings)
    anything: Any = None  # None matches any name, principal and host (the typing says str)
    flt = AclBindingFilter(
        ResourceType.ANY,
        anything,
        ResourcePatternType.ANY,
        principal if principal is not None else anything,
        anything,
        AclOperation.ANY,
        AclPermissionType.ALLOW,
    )
    try:
        bindings = admin.describe_acls(flt, request_timeout=timeout_s).result(timeout=timeout_s)
    except Exception as exc:  # noqa: BLE001
        raise AclAdminError(f"describing ACLs failed ({_why(exc)})") from None
    return sorted(_acl(b) for b in bindings)
