"""The registry as a sources file: YAML that ``factorysync apply`` reads back unchanged.

A plant versions its configuration, or copies it to a second site, by exporting it. The
document holds every declared field of each source (what ``apply`` would otherwise take
from a default is written out where the default could differ: frequencies, retention),
so applying it to the same registry reports every source as unchanged.

Secrets never leave in clear. An ``authentication_config`` value that is a secret (every
value but those naming *who* or *how*, see :func:`factorysync.security.secrets.is_identifier`)
is written as:

- ``"***"`` by default: ``apply`` keeps the stored secret for such a value (on this
  registry), and refuses it where nothing is stored;
- ``${env:NAME}`` with ``secrets_as_env``: a placeholder for a variable to set where the
  file is applied, named ``FS_SECRET_<SOURCE>_<CONNECTION>_<KEY>``; the names are listed
  (:attr:`Export.env_names`, and in the document's header). Applied where the variables
  hold the stored values, nothing changes; on a second site they become its secrets.

References the registry already holds (``${env:MES_TOKEN}``) are written as they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from factorysync.config import SourceDecl
from factorysync.security.secrets import MASK, is_identifier
from factorysync.store.registry import declaration_of, get_source, normal_mapping_config, source_ids
from factorysync.store.store import Store

_ENV_REF = re.compile(r"\$\{env:[A-Za-z_][A-Za-z0-9_]*\}")


@dataclass
class Export:
    text: str  # the YAML document
    sources: list[str]  # the source_ids it holds
    env_names: list[str] = field(default_factory=list)  # variables its placeholders name


def env_name(*parts: str) -> str:
    """``FS_SECRET_`` and the parts in upper case, other characters as ``_``."""
    return "FS_SECRET_" + "_".join(re.sub(r"[^A-Za-z0-9]+", "_", p).upper() for p in parts)


class _Secrets:
    """Replaces the secret values of authentication configs, noting the names it uses."""

    def __init__(self, as_env: bool) -> None:
        self.as_env = as_env
        self.names: list[str] = []

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
        if isinstance(value, str) and _ENV_REF.search(value):
            return value  # already a reference: not the secret itself
        if not self.as_env:
            return MASK
        name = env_name(*path)
        self.names.append(name)
        return f"${{env:{name}}}"


def declared(decl: SourceDecl, secrets: _Secrets) -> dict[str, Any]:
    """A stored source's declaration as ``apply`` takes it, secrets replaced."""
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
    for key in ("description", "schedule", "category", "legacy_id"):
        if getattr(decl, key) is not None:
            source[key] = getattr(decl, key)
    source["connections"] = [
        {
            "connection_name": c.connection_name,
            "connection_type": c.connection_type,
            "is_primary": c.is_primary,
            "is_backup": c.is_backup,
            "status": c.status,
            "connection_config": c.connection_config,
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


def export_sources(
    store: Store, wanted: list[str] | None = None, *, secrets_as_env: bool = False
) -> Export:
    """The sources ``wanted`` (all when empty or None) as a sources file."""
    store.ensure_ready()
    secrets = _Secrets(secrets_as_env)
    with store.connect() as conn:
        ids = list(dict.fromkeys(wanted)) if wanted else source_ids(conn)
        sources = [declared(declaration_of(get_source(conn, s), store.box), secrets) for s in ids]
    body = yaml.dump(
        {"sources": sources},
        Dumper=_PlainDumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=100,
    )
    return Export(_header(len(sources), secrets.names) + body, ids, secrets.names)
