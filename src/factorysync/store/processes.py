"""Whether a process named in the store (a run's worker, a lease holder) is still alive.

Runs, workers and leases name the process that holds them as ``host:pid`` or
``host:pid:name``. A process of this host that is gone holds nothing any more; one of
another host is not known here (its lease runs out instead).
"""

from __future__ import annotations

import os
import socket
from datetime import datetime

from factorysync.store.types import utcnow

PROCESS_STARTED = utcnow()  # nothing this process holds began earlier


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this host (one of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def dead_here(holder: str | None, started: datetime | None = None) -> bool:
    """Whether ``holder`` (``host:pid``, or ``host:pid:name``), holding something since
    ``started``, was a process of this host that is gone.

    Something that names this process's own id but began before this process started was
    a previous process's: after a reboot (or in a container) a service often gets the same
    id again. Without ``started``, this process's own id is alive.
    """
    host, _, rest = (holder or "").partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return started is not None and started < PROCESS_STARTED
    return not pid_alive(int(pid))
