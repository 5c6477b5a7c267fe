"""Kafka ACLs for streamserve's principals, and a small CreateAcls client.

`worker_acls` and `tenant_acls` are the least rights each role needs; `docs/security.md`
gives the same grants as `kafka-acls.sh` commands for a real cluster. aiokafka's admin client
has no `create_acls`, but its protocol module has the CreateAcls/DescribeAcls requests, which
`grant` sends through a plain `AIOKafkaClient` logged in as a super user.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from aiokafka.client import AIOKafkaClient
from aiokafka.protocol.admin import CreateAclsRequest, DescribeAclsRequest

from streams.config import Settings
from streams.errors import StackError


class Resource(IntEnum):
    ANY = 1
    TOPIC = 2
    GROUP = 3
    CLUSTER = 4


class Operation(IntEnum):
    ANY = 1
    READ = 3
    WRITE = 4
    CREATE = 5
    DESCRIBE = 8


class Pattern(IntEnum):
    ANY = 1
    LITERAL = 3
    PREFIXED = 4


_ALLOW = 3  # AclPermissionType.ALLOW
_ANY_PERMISSION = 1


@dataclass(frozen=True)
class Acl:
    """ALLOW `operation` on `resource` `name` (literal or prefix) to `principal`, from any host."""

    principal: str
    resource: Resource
    name: str
    operation: Operation
    pattern: Pattern = Pattern.LITERAL


def _grant(principal: str, resource: Resource, name: str, operations: Iterable[Operation],
           pattern: Pattern = Pattern.LITERAL) -> list[Acl]:
    return [Acl(principal, resource, name, op, pattern) for op in operations]


def reply_prefix_of(settings: Settings) -> str:
    """The worker's reply-topic allow-list prefix (STREAMSERVE_REPLY_TOPIC_PREFIX)."""
    return settings.reply_topic_prefix


# Each worker's faust app (the control agent) is its own consumer group, `streamserve-<id>`.
CONTROL_GROUP_PREFIX = "streamserve-"


def worker_acls(settings: Settings, principal: str) -> list[Acl]:
    """Read requests in the worker group; write results, tokens, dead letters and replies;
    read the control topic in its own group, write its reports on the control-status topic."""
    read, write = (Operation.READ, Operation.DESCRIBE), (Operation.WRITE, Operation.DESCRIBE)
    return [
        *_grant(principal, Resource.TOPIC, settings.control_topic, read),
        *_grant(principal, Resource.GROUP, CONTROL_GROUP_PREFIX, read, Pattern.PREFIXED),
        *_grant(principal, Resource.TOPIC, settings.control_status_topic, write),
        *_grant(principal, Resource.TOPIC, settings.requests_topic, read),
        *_grant(principal, Resource.GROUP, settings.consumer_group, read),
        *(acl for topic in (settings.results_topic, settings.tokens_topic, settings.dlq_topic)
          for acl in _grant(principal, Resource.TOPIC, topic, write)),
        *_grant(principal, Resource.TOPIC, reply_prefix_of(settings), write, Pattern.PREFIXED),
    ]


def tenant_acls(settings: Settings, principal: str, tenant: str) -> list[Acl]:
    """Write requests; read only the tenant's own reply topic `<prefix><tenant>`."""
    return [
        *_grant(principal, Resource.TOPIC, settings.requests_topic,
                (Operation.WRITE, Operation.DESCRIBE)),
        *_grant(principal, Resource.TOPIC, reply_topic_of(settings, tenant),
                (Operation.READ, Operation.DESCRIBE)),
    ]


def reply_topic_of(settings: Settings, tenant: str) -> str:
    return f"{reply_prefix_of(settings)}{tenant}"


async def grant(client_options: dict[str, Any], acls: list[Acl], timeout_s: float = 30.0) -> None:
    """Create `acls` (idempotent) and wait until the broker we asked enforces all of them.

    `client_options` are aiokafka keyword arguments of a super user (or a principal with ALTER
    on the cluster)."""
    client = AIOKafkaClient(**client_options)
    await client.bootstrap()
    try:
        node = client.get_random_node()
        for acl in acls:
            response = await client.send(node, CreateAclsRequest(
                acl.resource, acl.name, acl.pattern, acl.principal, "*", acl.operation, _ALLOW))
            for error_code, error_message in response.creation_responses:
                if error_code != 0:
                    raise StackError(f"the broker refused ACL {acl}: error {error_code} "
                                     f"{error_message or ''}".rstrip())
        await _wait_visible(client, node, acls, timeout_s)
    finally:
        await client.close()


async def _wait_visible(client: AIOKafkaClient, node: int, acls: list[Acl],
                        timeout_s: float) -> None:
    """ACLs reach a broker's authorizer through the metadata log, a moment after creation."""
    deadline = time.monotonic() + timeout_s
    for principal in {acl.principal for acl in acls}:
        wanted = {(a.resource, a.name, a.pattern, a.operation) for a in acls
                  if a.principal == principal}
        while not wanted <= await _described(client, node, principal):
            if time.monotonic() > deadline:
                raise StackError(f"ACLs of {principal} not in force after {timeout_s:.0f}s")
            await asyncio.sleep(0.1)


async def _described(client: AIOKafkaClient, node: int,
                     principal: str) -> set[tuple[int, str, int, int]]:
    response = await client.send(node, DescribeAclsRequest(
        Resource.ANY, None, Pattern.ANY, principal, None, Operation.ANY,
        _ANY_PERMISSION))
    if response.error_code != 0:
        raise StackError(f"describing the ACLs of {principal} failed: {response.error_message}")
    return {(resource_type, name, pattern, operation)
            for resource_type, name, pattern, entries in response.resources
            for _principal, _host, operation, _permission in entries}
