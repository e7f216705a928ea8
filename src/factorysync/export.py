"""The registry as a sources file: YAML that ``factorysync apply`` reads back unchanged.

A plant versions its configuration, or copies it to a second site, by exporting it. The
document holds every declared field of each source (what ``apply`` would otherwise take
from a default is written out where the default could differ: frequencies, retention),
so applying it to the same registry reports every source as unchanged.

Secrets never leave in clear. An ``authentication_config`` value that is a secret (every
value but those naming *who* or *how*, see :func:`factorysync.security.secret_values.is_identifier`)
is written as:

- ``"***"`` by default: ``apply`` keeps the stored secret for such a value (on this
  registry), and refuses it where nothing is stored;
- ``${env:NAME}`` with ``secrets_as_env``: a placeholder for a variable to set where the
  file is applied, named ``FS_SECRET_<SOURCE>_<CONNECTION>_<KEY>`` (with a short hash of
  the three added where two of them would squash to one name); the names are listed
  (:attr:`Export.env_names`, and in the document's header). Applied where the variables
  hold the stored values, nothing changes; on a second site they become its secrets.
  ``apply`` refuses a placeholder whose variable is not set where a secret is stored.

A value that is wholly a reference the registry already holds (``${env:MES_TOKEN}``) is
written as it is. ``connection_config`` is written as the API shows it: the connections'
secrets and credentials in URLs masked (:func:`factorysync.security.redaction.redact_config`);
``apply`` on this registry reads such a value as "keep the stored one".
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import yaml

from factorysync.config import SourceDecl
from factorysync.config.sites import SiteDecl, site_from_row
from factorysync.security.redaction import Redactor, redact_config
from factorysync.security.secret_values import MASK, is_env_reference, is_identifier
from factorysync.store.registry import declaration_of, get_source, normal_mapping_config, source_ids
from factorysync.store.sites import list_sites
from factorysync.store.store import Store


@dataclass
class Export:
    text: str  # the YAML document
    sources: list[str]  # the source_ids it holds
    env_names: list[str] = field(default_factory=list)  # variables its placeholders name


def env_name(*parts: str) -> str:
    """``FS_SECRET_`` and the parts in upper case, other characters as ``_``."""
    return "FS_SECRET_" + "_".join(re.sub(r"[^A-Za-z0-9]+", "_", p).upper() for p in parts)


@dataclass(frozen=True)
class _Placeholder:
    """Where a secret goes, named once every placeholder of the export is known."""

    path: tuple[str, ...]  # source_id, connection name, key (and keys or indexes within)


class _Secrets:
    """Replaces the secret values of authentication configs, noting where it put
    placeholders; :meth:`names` then gives each place its variable."""

    def __init__(self, as_env: bool) -> None:
        self.as_env = as_env
        self.paths: list[tuple[str, ...]] = []

    def config(self, source_id: str, connection: str, auth: dict[str, Any]) -> dict[str, Any]:
        return {
            key: value
            if is_identifier(key, value)
            else self._value(value, source_id, connection, key)
            for key, value in auth.items()
        }

    def _value(self, value: Any, *path: str) -> Any:
        if isinstance(value, dict):
            return {k: self._value(v, *path, str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self._value(v, *path, str(i)) for i, v in enumerate(value)]
        if value is None or isinstance(value, bool) or value == "":
            return value
        if is_env_reference(value):
            return value  # a reference, not the secret itself
        if not self.as_env:
            return MASK
        self.paths.append(path)
        return _Placeholder(path)

    def names(self) -> dict[tuple[str, ...], str]:
        """A variable name per placeholder, no two alike: the squashed name, and where
        places squash to the same one (``a-b`` and ``a_b``), a stable hash of the place."""
        squashed = {path: env_name(*path) for path in self.paths}
        count = Counter(squashed.values())
        taken = {name for name, n in count.items() if n == 1}
        names = {}
        for path, name in squashed.items():
            if count[name] > 1:
                digest = hashlib.sha256("\0".join(path).encode()).hexdigest().upper()
                size = 6
                while f"{name}_{digest[:size]}" in taken:
                    size += 2
                name = f"{name}_{digest[:size]}"
                taken.add(name)
            names[path] = name
        return names


def _filled(value: Any, names: dict[tuple[str, ...], str]) -> Any:
    if isinstance(value, _Placeholder):
        return f"${{env:{names[value.path]}}}"
    if isinstance(value, dict):
        return {k: _filled(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [_filled(v, names) for v in value]
    return value


def declared(decl: SourceDecl, secrets: _Secrets) -> dict[str, Any]:
    """A stored source's declaration as ``apply`` takes it, secrets replaced."""
    redact = Redactor()
    for c in decl.connections:
        redact.add(c.authentication_config)
    source: dict[str, Any] = {
        "source_id": decl.source_id,
        "name": decl.name,
        "source_type": decl.source_type,
        "connection_type": decl.connection_type,
        # 'error' is the engine's verdict, not a declaration (apply leaves it to the engine).
        "status": "active" if decl.status == "error" else decl.status,
        "priority": decl.priority,
    }
    if decl.refresh_interval_declared:
        source["refresh_interval"] = decl.refresh_interval
    for key in ("description", "schedule", "category", "site", "legacy_id"):
        if getattr(decl, key) is not None:
            source[key] = getattr(decl, key)
    source["connections"] = [
        {
            "connection_name": c.connection_name,
            "connection_type": c.connection_type,
            "is_primary": c.is_primary,
            "is_backup": c.is_backup,
            "status": c.status,
            "connection_config": redact_config(c.connection_config, redact),
            "authentication_config": secrets.config(
                decl.source_id, c.connection_name, c.authentication_config
            ),
        }
        for c in decl.connections
    ]
    # Every mapping field is written, null included: a field left out would take the
    # default of a new declaration, which a stored mapping may not have.
    source["mappings"] = [
        {
            "target_table": m.target_table,
            "sync_strategy": m.sync_strategy,
            "sync_frequency": m.sync_frequency,
            "data_retention_days": m.data_retention_days,
            "is_active": m.is_active,
            "mapping_config": normal_mapping_config(m.mapping_config),
        }
        for m in decl.mappings
    ]
    return source


class _PlainDumper(yaml.SafeDumper):
    """Every value written out: ``apply`` refuses YAML anchors and aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _header(count: int, names: list[str]) -> str:
    lines = [
        f"# factorysync registry export: {count} source(s).",
        "# Apply with: factorysync apply FILE",
    ]
    if names:
        lines.append("# Secrets are not in this file. Set these variables where it is applied:")
        lines += [f"#   {name}" for name in names]
    return "\n".join(lines) + "\n"


def declared_site(site: SiteDecl) -> dict[str, Any]:
    """A stored site as ``apply`` takes it (``time_zone`` and ``description`` written
    even when empty: left out, a declaration would keep nothing else either)."""
    found: dict[str, Any] = {
        "name": site.name,
        "time_zone": site.time_zone,
        "description": site.description,
    }
    if site.shifts:
        found["shifts"] = [s.model_dump(exclude_none=True) for s in site.shifts]
    return found


def export_sources(
    store: Store, wanted: list[str] | None = None, *, secrets_as_env: bool = False
) -> Export:
    """The sources ``wanted`` (all when empty or None) as a sources file, with the sites
    they belong to (every site, when all sources are exported)."""
    store.ensure_ready()
    secrets = _Secrets(secrets_as_env)
    with store.connect() as conn:
        ids = list(dict.fromkeys(wanted)) if wanted else source_ids(conn)
        decls = [declaration_of(get_source(conn, s), store.box) for s in ids]
        sources = [declared(decl, secrets) for decl in decls]
        in_use = {d.site for d in decls}
        sites = [
            declared_site(site_from_row(row))
            for row in list_sites(conn)
            if not wanted or row["name"] in in_use
        ]
    names = secrets.names()
    document: dict[str, Any] = {"sites": sites} if sites else {}
    document["sources"] = _filled(sources, names)
    body = yaml.dump(
        document,
        Dumper=_PlainDumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=100,
    )
    listed = [names[path] for path in secrets.paths]
    return Export(_header(len(sources), listed) + body, ids, listed)
