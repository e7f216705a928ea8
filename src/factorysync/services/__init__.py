"""Operations shared by the CLI, the API and the console (one way to do each thing).

Callers import this package and call ``services.<operation>``; the modules hold the
operations by what they work on:

    setup         init_store (key, schema, data root), create_first_admin
    declarations  apply_file, import_legacy, create/update_source, secret_problems
    lifecycle     deletion_plan, delete_source (keeping or dropping its rows), duplicate_source,
                  change_status
    runs          sync_many, reset_source, refuse_while_running, run_record, history
    quarantine    quarantine_page, quarantine_csv, replay_quarantine, clear_quarantine
    status        sources, describe_sources, live_states, public_source, status_summary
    checks        test_source (a source's connections, no data read)
    keys          rotate_secret_key
"""

from factorysync import alerts  # noqa: F401 - its rules hear the runs this process ends
from factorysync.services.checks import test_source
from factorysync.services.declarations import (
    apply_file,
    create_source,
    import_legacy,
    secret_problems,
    update_source,
)
from factorysync.services.keys import KeyRotation, rotate_secret_key
from factorysync.services.lifecycle import (
    change_status,
    default_copy_id,
    delete_source,
    deletion_plan,
    duplicate_source,
)
from factorysync.services.quarantine import (
    clear_quarantine,
    quarantine_csv,
    quarantine_page,
    quarantined,
    replay_quarantine,
)
from factorysync.services.runs import (
    history,
    refuse_while_running,
    reset_source,
    run_record,
    sync_many,
)
from factorysync.services.setup import InitResult, create_first_admin, init_store
from factorysync.services.status import (
    LIVE_SPAN_S,
    WORKERS_SHOWN_S,
    describe_sources,
    live_states,
    public_source,
    sources,
    status_summary,
)

__all__ = [
    "LIVE_SPAN_S",
    "WORKERS_SHOWN_S",
    "InitResult",
    "KeyRotation",
    "apply_file",
    "change_status",
    "clear_quarantine",
    "create_first_admin",
    "create_source",
    "default_copy_id",
    "delete_source",
    "deletion_plan",
    "describe_sources",
    "duplicate_source",
    "history",
    "import_legacy",
    "init_store",
    "live_states",
    "public_source",
    "quarantine_csv",
    "quarantine_page",
    "quarantined",
    "refuse_while_running",
    "replay_quarantine",
    "reset_source",
    "rotate_secret_key",
    "run_record",
    "secret_problems",
    "sources",
    "status_summary",
    "sync_many",
    "test_source",
    "update_source",
]
