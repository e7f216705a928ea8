"""Browsing an OPC UA server: the variables under a node, for choosing a source's nodes.

``factorysync source discover SOURCE --browse`` walks the address space of the source's
server from a start node (``Objects`` by default) down to a depth (3 by default), breadth
first along hierarchical references (Organizes, HasComponent, HasProperty …), and lists
each variable: node id, browse path, data type, access level (of the connection's user)
and current value, with a suggested ``field`` name, so that the listing can be pasted
into ``nodes``. Under ``Objects`` (or ``Root``) the standard namespace (ns=0: the
server's own ``Server`` object, its diagnostics) is left out; start at one of its nodes
to list it.

A server is not trusted to be small, well formed or quick:

* a node reached twice (references that form a cycle, a variable organised under two
  folders) is visited once; references to other servers are not followed;
* at most ``max_nodes`` nodes are visited and the walk takes at most ``max_seconds``,
  each request at most the connection's ``timeout_s``; a walk stopped by either, by a
  server that stops answering or by one that refuses a request, returns what it found
  with ``truncated`` saying why — or, when it found nothing, raises that reason;
* references come in pages (``REFS_PER_NODE`` per node and request), and all pages of a
  walk together hold at most ``REFS_PER_NODE_VISITED`` × ``max_nodes`` references, so a
  server that repeats itself cannot keep the walk busy;
* long texts and arrays are shortened in the listing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from factorysync.config.names import snake_case
from factorysync.connectors.opcua import OpcUaConfig, asyncua, connect, plain_value
from factorysync.errors import ConfigError, ConnectorRetriable

T = TypeVar("T")

# Node ids of the standard folders a walk may start at by name.
FOLDERS = {"root": 84, "objects": 85, "types": 86, "views": 87}
REFS_PER_NODE = 500  # references asked for per node and Browse request
NODES_PER_REQUEST = 100  # nodes per Browse request
READS_PER_REQUEST = 1000  # attributes per Read request
REFS_PER_NODE_VISITED = 10  # references a walk takes at most, per node it may visit
TEXT_MAX = 200  # characters of a text value shown
ITEMS_MAX = 20  # items of an array value shown
FIELD_MAX = 63  # the length a NodeSpec field may have
# NodeClass values (OPC UA Part 3): what the walk goes into and lists.
OBJECT, VARIABLE = 1, 2
# AccessLevel bits, as listed.
ACCESS_BITS = ((0, "read"), (1, "write"), (2, "history"), (3, "history_write"))


class _Stop(Exception):
    """The walk ends early; its text says why."""


@dataclass
class _Node:
    node_id: Any  # ua.NodeId
    path: str
    node_class: int


def start_node(text: str) -> Any:
    """The node a walk starts at: a node id (``ns=2;s=Line1``, ``i=85``) or the name of
    a standard folder (Objects, Root, Types, Views)."""
    ua = asyncua().ua
    folder = FOLDERS.get(text.strip().lower())
    if folder is not None:
        return ua.NodeId(folder, 0)
    try:
        return ua.NodeId.from_string(text.strip())
    except Exception:
        raise ConfigError(
            f"--start {text!r} is not an OPC UA node id (e.g. ns=2;s=Line1 or i=85) "
            "nor one of Objects, Root, Types, Views"
        ) from None


async def browse(
    cfg: OpcUaConfig,
    auth: dict[str, Any],
    *,
    start: str = "Objects",
    depth: int = 3,
    max_nodes: int = 1000,
    max_seconds: float = 60,
) -> dict[str, Any]:
    """The variables under ``start``, down to ``depth`` levels below it.

    Returns ``{"endpoint", "start", "depth", "variables": [{node_id, path, data_type,
    access, value, status, field}], "visited", "truncated"}``; ``truncated`` is None for a
    complete listing, else why it stopped early.
    """
    if depth < 1:
        raise ConfigError("--depth must be 1 or more")
    if max_nodes < 1 or max_seconds <= 0:
        raise ConfigError("--max-nodes and --max-seconds must be positive")
    root = start_node(start)
    client = await connect(cfg, auth)
    try:
        walk = _Walk(client, cfg, root, max_nodes, max_seconds)
        return await walk.run(depth)
    finally:
        # A server that stopped answering may not close cleanly.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.disconnect(), 5)


class _Walk:
    def __init__(
        self, client: Any, cfg: OpcUaConfig, root: Any, max_nodes: int, max_seconds: float
    ) -> None:
        self.ua = asyncua().ua
        self.client = client
        self.cfg = cfg
        self.root = root
        self.max_nodes = max_nodes
        self.max_seconds = max_seconds
        self.deadline = asyncio.get_running_loop().time() + max_seconds
        self.seen = {root.to_string()}
        self.refs_left = REFS_PER_NODE_VISITED * max_nodes
        # Under Objects or Root, the server's own nodes (ns=0) are left out.
        self.skip_standard = root.NamespaceIndex == 0 and root.Identifier in (84, 85)
        self.variables: list[_Node] = []

    async def run(self, depth: int) -> dict[str, Any]:
        truncated: str | None = None
        name = await self._browse_name(self.root)
        try:
            level = [_Node(self.root, name, OBJECT)]
            for _ in range(depth):
                level = await self._below(level)
                if not level:
                    break
        except _Stop as stop:
            truncated = str(stop)
        try:
            listed = await self._describe(self.variables)
        except _Stop as stop:
            truncated = truncated or str(stop)
            listed = [self._entry(v, {}) for v in self.variables]
        if truncated is not None and not listed:
            raise ConnectorRetriable(
                f"OPC UA {self.cfg.endpoint}: browsing {name} found no variable: {truncated}"
            )
        _name_fields(listed)
        return {
            "endpoint": self.cfg.endpoint,
            "start": self.root.to_string(),
            "depth": depth,
            "variables": listed,
            "visited": len(self.seen) - 1,
            "truncated": truncated,
        }

    # -- requests --------------------------------------------------------------------
    async def _ask(self, request: Callable[[], Awaitable[T]], what: str) -> T:
        """One request, within the connection's timeout and what is left of the walk's."""
        left = self.deadline - asyncio.get_running_loop().time()
        if left <= 0:
            raise _Stop(f"stopped after {self.max_seconds:g} s (--max-seconds)")
        try:
            return await asyncio.wait_for(request(), min(self.cfg.timeout_s, left))
        except TimeoutError:
            if left <= self.cfg.timeout_s:
                raise _Stop(f"stopped after {self.max_seconds:g} s (--max-seconds)") from None
            raise _Stop(
                f"the server did not answer a {what} request within {self.cfg.timeout_s:g} s"
            ) from None
        except self.ua.UaStatusCodeError as exc:
            raise _Stop(f"the server refused a {what} request: {exc}") from None
        except (OSError, self.ua.UaError) as exc:
            raise _Stop(f"the connection failed during a {what} request: {exc!r}") from None

    async def _browse_name(self, node_id: Any) -> str:
        params = self.ua.ReadParameters()
        params.NodesToRead = [
            self.ua.ReadValueId(NodeId=node_id, AttributeId=self.ua.AttributeIds.BrowseName)
        ]
        try:
            found = (await self._ask(partial(self.client.uaclient.read, params), "Read"))[0]
        except _Stop as stop:
            raise ConnectorRetriable(f"OPC UA {self.cfg.endpoint}: {stop}") from None
        if not found.StatusCode.is_good() or found.Value is None:
            raise ConnectorRetriable(
                f"OPC UA {self.cfg.endpoint}: no node {node_id.to_string()} to start at "
                f"({found.StatusCode.name})"
            )
        return str(getattr(found.Value.Value, "Name", found.Value.Value))

    # -- the walk --------------------------------------------------------------------
    async def _below(self, level: list[_Node]) -> list[_Node]:
        """The nodes one level below ``level`` not seen before (variables are kept)."""
        found: list[_Node] = []
        for first in range(0, len(level), NODES_PER_REQUEST):
            parents = level[first : first + NODES_PER_REQUEST]
            for parent, ref in await self._references(parents):
                child = self._child(parent, ref)
                if child is None:
                    continue
                if len(self.seen) - 1 >= self.max_nodes:  # the start node is not counted
                    raise _Stop(f"stopped at {self.max_nodes} nodes (--max-nodes)")
                self.seen.add(child.node_id.to_string())
                found.append(child)
                if child.node_class == VARIABLE:
                    self.variables.append(child)
        return found

    def _child(self, parent: _Node, ref: Any) -> _Node | None:
        target = ref.NodeId
        if getattr(target, "ServerIndex", 0) or getattr(target, "NamespaceUri", None):
            return None  # on another server, or in a namespace named only by its URI
        if int(ref.NodeClass) not in (OBJECT, VARIABLE):
            return None
        node_id = self.ua.NodeId(target.Identifier, target.NamespaceIndex, target.NodeIdType)
        if self.skip_standard and node_id.NamespaceIndex == 0:
            return None
        if node_id.to_string() in self.seen:
            return None
        name = str(getattr(ref.BrowseName, "Name", "") or node_id.to_string())
        return _Node(node_id, f"{parent.path}/{name}", int(ref.NodeClass))

    async def _references(self, parents: list[_Node]) -> list[tuple[_Node, Any]]:
        """The hierarchical references of ``parents`` (all pages, within the walk's budget)."""
        ua = self.ua
        params = ua.BrowseParameters()
        params.RequestedMaxReferencesPerNode = REFS_PER_NODE
        params.NodesToBrowse = [
            ua.BrowseDescription(
                NodeId=p.node_id,
                BrowseDirection=ua.BrowseDirection.Forward,
                ReferenceTypeId=ua.NodeId(ua.ObjectIds.HierarchicalReferences),
                IncludeSubtypes=True,
                NodeClassMask=OBJECT | VARIABLE,
                ResultMask=int(ua.BrowseResultMask.All),
            )
            for p in parents
        ]
        results = await self._ask(partial(self.client.uaclient.browse, params), "Browse")
        found: list[tuple[_Node, Any]] = []
        for parent, result in zip(parents, results, strict=False):
            while True:
                if not result.StatusCode.is_good():
                    break  # a node the server will not browse: left out
                refs = list(result.References or [])
                self.refs_left -= len(refs)
                if self.refs_left < 0:
                    raise _Stop(
                        "the server sent more references than "
                        f"{REFS_PER_NODE_VISITED} per node the walk may visit"
                    )
                found += [(parent, ref) for ref in refs]
                if not result.ContinuationPoint:
                    break
                more = ua.BrowseNextParameters()
                more.ReleaseContinuationPoints = False
                more.ContinuationPoints = [result.ContinuationPoint]
                result = (
                    await self._ask(partial(self.client.uaclient.browse_next, more), "BrowseNext")
                )[0]
        return found

    # -- the variables -----------------------------------------------------------------
    async def _describe(self, variables: list[_Node]) -> list[dict[str, Any]]:
        """Each variable's value, data type and access level, read in few requests."""
        ua = self.ua
        attributes = (
            ua.AttributeIds.Value,
            ua.AttributeIds.DataType,
            ua.AttributeIds.UserAccessLevel,
        )
        wanted = [(v, a) for v in variables for a in attributes]
        read: dict[tuple[str, int], Any] = {}
        for first in range(0, len(wanted), READS_PER_REQUEST):
            chunk = wanted[first : first + READS_PER_REQUEST]
            params = ua.ReadParameters()
            params.NodesToRead = [ua.ReadValueId(NodeId=v.node_id, AttributeId=a) for v, a in chunk]
            values = await self._ask(partial(self.client.uaclient.read, params), "Read")
            for (v, a), found in zip(chunk, values, strict=False):
                read[(v.node_id.to_string(), int(a))] = found
        types = await self._type_names(
            [dv.Value.Value for (_, a), dv in read.items() if a == int(ua.AttributeIds.DataType)]
        )
        listed = []
        for v in variables:
            key = v.node_id.to_string()
            got = {int(a): read.get((key, int(a))) for a in attributes}
            listed.append(self._entry(v, got, types))
        return listed

    def _entry(
        self, v: _Node, got: dict[int, Any], types: dict[str, str] | None = None
    ) -> dict[str, Any]:
        ua = self.ua
        value = got.get(int(ua.AttributeIds.Value))
        data_type = got.get(int(ua.AttributeIds.DataType))
        access = got.get(int(ua.AttributeIds.UserAccessLevel))
        shown: Any = None
        status = None
        if value is not None:
            status = value.StatusCode.name
            if value.StatusCode.is_good() and value.Value is not None:
                shown = _shorten(plain_value(value.Value.Value))
        type_name = None
        if data_type is not None and data_type.StatusCode.is_good() and data_type.Value:
            type_id = data_type.Value.Value
            type_name = (types or {}).get(type_id.to_string(), type_id.to_string())
            if isinstance(shown, list):
                type_name += "[]"
        bits = access.Value.Value if access is not None and access.Value is not None else None
        return {
            "node_id": v.node_id.to_string(),
            "path": v.path,
            "data_type": type_name,
            "access": (
                [name for bit, name in ACCESS_BITS if bits & (1 << bit)]
                if isinstance(bits, int)
                else None
            ),
            "value": shown,
            "status": status,
        }

    async def _type_names(self, type_ids: list[Any]) -> dict[str, str]:
        """Names of data types: the standard ones known, the server's own read."""
        ua = self.ua
        names: dict[str, str] = {}
        unknown = []
        for type_id in {t.to_string(): t for t in type_ids if t is not None}.values():
            if type_id.NamespaceIndex == 0 and type_id.Identifier in ua.ObjectIdNames:
                names[type_id.to_string()] = ua.ObjectIdNames[type_id.Identifier]
            else:
                unknown.append(type_id)
        for first in range(0, len(unknown), READS_PER_REQUEST):
            chunk = unknown[first : first + READS_PER_REQUEST]
            params = ua.ReadParameters()
            params.NodesToRead = [
                ua.ReadValueId(NodeId=t, AttributeId=ua.AttributeIds.BrowseName) for t in chunk
            ]
            values = await self._ask(partial(self.client.uaclient.read, params), "Read")
            for type_id, found in zip(chunk, values, strict=False):
                if found.StatusCode.is_good() and found.Value is not None:
                    names[type_id.to_string()] = str(getattr(found.Value.Value, "Name", ""))
        return names


def _shorten(value: Any) -> Any:
    if isinstance(value, str) and len(value) > TEXT_MAX:
        return value[:TEXT_MAX] + "…"
    if isinstance(value, list):
        shown = [_shorten(v) for v in value[:ITEMS_MAX]]
        if len(value) > ITEMS_MAX:
            shown.append(f"… {len(value) - ITEMS_MAX} more")
        return shown
    return value


def _name_fields(listed: list[dict[str, Any]]) -> None:
    """A ``field`` for each variable, unique in the listing: its path below the start
    node in snake_case (``Line1/Press/Speed`` -> ``line1_press_speed``)."""
    taken: set[str] = set()
    for entry in listed:
        below = entry["path"].split("/", 1)[-1]
        base = (snake_case(below) or "node")[:FIELD_MAX]
        name, n = base, 1
        while name in taken:
            n += 1
            suffix = f"_{n}"
            name = base[: FIELD_MAX - len(suffix)] + suffix
        taken.add(name)
        entry["field"] = name
