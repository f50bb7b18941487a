"""Access control on the cluster: SCRAM credentials and ACLs, failing with one line.

The Kafka calls are the runtime boundary's (:class:`tradeflux.stream.kafka.Admin`); this
module turns their failures into :class:`AclAdminError` with what to do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tradeflux.broker.admin import admin
from tradeflux.broker.errors import BrokerError
from tradeflux.config import Settings
from tradeflux.stream.errors import KafkaClientError
from tradeflux.stream.kafka import Acl

__all__ = ["Acl", "AclAdminError", "create_acls", "describe_acls", "upsert_scram_users"]

SCRAM_ITERATIONS = 8192


class AclAdminError(BrokerError):
    """The cluster refused or did not answer an ACL or SCRAM request."""


def upsert_scram_users(
    settings: Settings, users: Mapping[str, str], timeout_s: float = 30.0
) -> None:
    """Create or update the SCRAM-SHA-512 credential of each ``user -> password``."""
    try:
        admin(settings).upsert_scram_users(users, SCRAM_ITERATIONS, timeout_s)
    except KafkaClientError as exc:
        raise AclAdminError(f"{exc.args[0]}") from None


def create_acls(settings: Settings, acls: Sequence[Acl], timeout_s: float = 30.0) -> int:
    """Create every ACL (an existing one is no error); return how many were sent."""
    try:
        return admin(settings).create_acls(acls, timeout_s)
    except KafkaClientError as exc:
        raise AclAdminError(
            f"{exc.args[0]}; the command runs as an admin of the cluster "
            "(TRADEFLUX_KAFKA_SASL_USERNAME...)"
        ) from None


def describe_acls(
    settings: Settings, principal: str | None = None, timeout_s: float = 30.0
) -> list[Acl]:
    """Return the cluster's ALLOW ACLs (of ``principal`` only, if given), sorted."""
    try:
        return admin(settings).describe_acls(principal, timeout_s)
    except KafkaClientError as exc:
        raise AclAdminError(f"{exc.args[0]}") from None
