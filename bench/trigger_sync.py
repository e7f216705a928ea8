"""Start a sync on a running factorysync service and wait for the run to end.

What a plant's own script does: ``POST /api/sources/{id}/sync?wait_s=…``, which answers
with the finished run (or, for a run longer than that, 202 and the run to follow at
``GET /api/runs/{run_id}``). Prints the run record as a one-element JSON list (like `factorysync
source sync --json`); exits 1 when the run did not succeed. Standard library only, so
its own start-up stays small.

    FACTORYSYNC_BENCH_URL=http://127.0.0.1:8000 FACTORYSYNC_BENCH_TOKEN=… \\
        python bench/trigger_sync.py production
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request

POLL_S = 0.05
WAIT_S = 600


def call(method: str, url: str, token: str) -> dict[str, object]:
    request = urllib.request.Request(
        url, method=method, headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=300) as answer:
        return json.loads(answer.read())


def main() -> int:
    source_id = sys.argv[1]
    base = os.environ["FACTORYSYNC_BENCH_URL"].rstrip("/")
    token = os.environ["FACTORYSYNC_BENCH_TOKEN"]
    run = call("POST", f"{base}/api/sources/{source_id}/sync?wait_s={WAIT_S}", token)
    if "run_id" in run:  # still running after WAIT_S: follow it
        run_url = f"{base}/api/runs/{run['run_id']}"
        while (run := call("GET", run_url, token))["sync_status"] == "running":
            time.sleep(POLL_S)
    print(json.dumps([run]))
    return 0 if run["sync_status"] == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
