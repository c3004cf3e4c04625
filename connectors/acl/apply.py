"""Applies a plan of :mod:`connectors.acl.plan` through kafka-python's admin client (the I/O, kept thin).

Run as a principal the cluster lets manage ACLs (a super user). Before the ACLs, every topic of the
configuration is created if missing: stages holding only their ACLs may not create topics.
"""

from collections.abc import Iterable

from kafka.admin import (
    ACL,
    ACLFilter,
    ACLOperation,
    ACLPermissionType,
    ACLResourcePatternType,
    ResourcePattern,
    ResourcePatternFilter,
    ResourceType,
)
from kafka.errors import KafkaError

from connectors.acl.plan import Acl, Difference, difference
from connectors.registry import topics
from connectors.runtime.kafka import ensure_topics, make_admin
from connectors.settings import Settings
from routing.errors import UbridgeError


class AclApplyError(UbridgeError):
    """The cluster refused to list or create ACLs; the message says which and why."""


def held(settings: Settings, principals: Iterable[str]) -> list[Acl]:
    """The literal ALLOW ACLs for any host the cluster holds for ``principals`` (others are not ubridge's)."""
    admin = make_admin(settings.kafka)
    found: list[Acl] = []
    try:
        for principal in sorted(set(principals)):
            everything = ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY)
            query = ACLFilter(principal, None, ACLOperation.ANY, ACLPermissionType.ANY, everything)
            acls, _ = admin.describe_acls(query)
            found += [_ours(acl) for acl in acls if _plain(acl)]
    except KafkaError as exc:
        message = f"the cluster refused to list ACLs ({type(exc).__name__}): is its authorizer on, are you admin?"
        raise AclApplyError(message) from exc
    finally:
        admin.close()
    return found


def apply(settings: Settings, planned: list[Acl], *, prune: bool = False) -> Difference:
    """Create the topics and the planned ACLs the cluster lacks; with ``prune``, delete the principals' extra ones.

    Raises:
        AclApplyError: the cluster refused.
    """
    ensure_topics(settings.kafka, topics(settings))
    diff = difference(planned, held(settings, {acl.principal for acl in planned}))
    admin = make_admin(settings.kafka)
    try:
        if diff.missing:
            result = admin.create_acls([_theirs(acl) for acl in diff.missing])
            if result["failed"]:
                message = f"the cluster refused {len(result['failed'])} ACL(s): {result['failed'][0]}"
                raise AclApplyError(message)
        if prune and diff.extra:
            admin.delete_acls([_theirs(acl) for acl in diff.extra])
    except KafkaError as exc:
        message = f"the cluster refused the ACLs ({type(exc).__name__}: {exc})"
        raise AclApplyError(message) from exc
    finally:
        admin.close()
    return diff


def _plain(acl: ACL) -> bool:
    pattern = acl.resource_pattern
    literal = pattern.pattern_type == ACLResourcePatternType.LITERAL
    return bool(literal and acl.permission_type == ACLPermissionType.ALLOW and acl.host == "*")


def _ours(acl: ACL) -> Acl:
    pattern = acl.resource_pattern
    return Acl(acl.principal, pattern.resource_type.name, pattern.resource_name, acl.operation.name)


def _theirs(acl: Acl) -> ACL:
    pattern = ResourcePattern(ResourceType[acl.resource], acl.name, ACLResourcePatternType.LITERAL)
    return ACL(acl.principal, "*", ACLOperation[acl.operation], ACLPermissionType.ALLOW, pattern)
