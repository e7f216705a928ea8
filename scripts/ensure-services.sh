#!/usr/bin/env bash
# Make sure the local servers the test suite talks to are up; start those that are down.
# Each check is quick; a server that cannot be started is reported, and the tests that
# need it then fail (FACTORYSYNC_REQUIRE_SERVICES=1) or skip with the reason.
set -u

wait_for() {  # wait_for NAME CHECK-COMMAND...
    local name=$1; shift
    for _ in $(seq 1 30); do
        if "$@" >/dev/null 2>&1; then echo "services: $name is up"; return 0; fi
        sleep 1
    done
    echo "services: $name did not come up" >&2
    return 1
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! port_open 5432; then
    if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
        echo "services: starting PostgreSQL"
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
    fi
    wait_for PostgreSQL port_open 5432 || true
else
    echo "services: PostgreSQL is up"
fi

if ! port_open 3306; then
    if [ -x /usr/sbin/mariadbd ]; then
        echo "services: starting MariaDB"
        start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
    fi
    wait_for MariaDB port_open 3306 || true
else
    echo "services: MariaDB is up"
fi

if ! port_open 1883; then
    if command -v mosquitto >/dev/null; then
        echo "services: starting Mosquitto"
        mosquitto -d -c /etc/mosquitto/mosquitto.conf || true
    fi
    wait_for Mosquitto port_open 1883 || true
else
    echo "services: Mosquitto is up"
fi
exit 0
