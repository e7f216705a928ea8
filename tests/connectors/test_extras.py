"""Drivers are optional extras: each connection type names the extra holding its driver,
the extra exists, and a source whose driver is missing is refused with the command that
installs it."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from importlib.metadata import metadata
from pathlib import Path
from typing import Any

import pytest

from factorysync.connectors import modbus, mqtt_wire, opcua, registry, s7
from factorysync.connectors.database import config as database
from factorysync.connectors.file.workbook_process import Limits, open_sheet
from factorysync.errors import ConfigError, ConnectorFatal


def _extras() -> set[str]:
    return set(metadata("factorysync").get_all("Provides-Extra") or [])


def test_every_declared_extra_exists_and_all_holds_every_driver() -> None:
    extras = _extras()
    declared = {cls.extra for cls in registry.connection_types().values() if cls.extra}
    assert {"mqtt", "opcua", "modbus", "s7"} <= declared
    assert declared <= extras
    assert {"excel", "mysql", "mysqlclient", "mssql", "all"} <= extras
    requires = metadata("factorysync").get_all("Requires-Dist") or []
    all_of = {r.split(";")[0].strip() for r in requires if 'extra == "all"' in r}
    named = {extra for r in all_of for extra in r.partition("[")[2].rstrip("]").split(",")}
    assert declared | {"excel", "mysql"} <= named, all_of


LOADERS: dict[str, tuple[tuple[str, ...], Callable[[], Any], str]] = {
    "opcua": (("asyncua",), opcua.asyncua, "OPC UA sources need the asyncua package"),
    "mqtt": (("paho", "paho.mqtt", "paho.mqtt.client"), mqtt_wire.paho, "MQTT sources"),
    "modbus": (("pymodbus", "pymodbus.client"), modbus.pymodbus_client, "Modbus sources"),
    "s7": (("snap7",), s7.snap7_module, "S7 sources need the python-snap7 package"),
}


@pytest.mark.parametrize("connection_type", list(LOADERS))
def test_a_missing_driver_names_the_extra_that_installs_it(
    connection_type: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    modules, load, says = LOADERS[connection_type]
    extra = registry.connector_class(connection_type).extra
    assert extra is not None
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)  # import now raises ImportError
    with pytest.raises(ConfigError) as refused:
        load()
    assert says in str(refused.value)
    assert f"pip install 'factorysync[{extra}]'" in str(refused.value)


@pytest.mark.parametrize(("driver", "extra"), [("pymysql", "mysql"), ("mysqldb", "mysqlclient")])
def test_a_missing_database_driver_names_its_extra(
    driver: str, extra: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    module = database.DRIVERS[driver].module
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == module else real(name, *a)
    )
    with pytest.raises(ConnectorFatal) as refused:
        database._driver_available(driver)
    assert f"pip install 'factorysync[{extra}]'" in str(refused.value)
    assert extra in _extras()


def test_a_workbook_without_its_reader_names_the_excel_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A python_calamine that cannot be imported, first on the reader process's path.
    shadow = tmp_path / "shadow" / "python_calamine"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('python_calamine is not installed')\n")
    monkeypatch.syspath_prepend(str(shadow.parent))
    book = tmp_path / "line.xlsx"
    book.write_bytes(b"PK\x03\x04 not read")
    with (
        pytest.raises(ConnectorFatal) as refused,
        open_sheet(book, 0, "line.xlsx", Limits(512, 30)),
    ):
        pass
    assert "pip install 'factorysync[excel]'" in str(refused.value)
