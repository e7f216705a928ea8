"""``factorysync export``: the registry as YAML that ``apply`` reads back unchanged."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from factorysync.cli.base import err, open_store
from factorysync.export import export_sources


def export(
    sources: Annotated[
        list[str] | None, typer.Argument(help="Source ids to export (default: every source).")
    ] = None,
    with_secrets_as_env: Annotated[
        bool,
        typer.Option(
            "--with-secrets-as-env",
            help="Write secrets as ${env:NAME} placeholders and list the variables to set "
            "(default: '***', which apply reads as 'keep the stored secret').",
        ),
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write to this file (created readable by its owner only), not stdout.",
        ),
    ] = None,
) -> None:
    """Print the registry (or some sources) as a sources file; secrets never in clear."""
    found = export_sources(open_store(), sources, secrets_as_env=with_secrets_as_env)
    if output is None:
        sys.stdout.write(found.text)
    else:
        # Owner only, as the key file: the document describes every connection.
        fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(found.text)
        err.print(f"{len(found.sources)} source(s) written to {output}", highlight=False)
    if found.env_names:
        err.print(
            "set these environment variables where the file is applied: "
            + ", ".join(found.env_names),
            highlight=False,
        )
