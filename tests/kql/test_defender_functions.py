"""Defender's built-in hunting functions: AssignedIPAddresses() and DeviceFromIP() answered from a local
DeviceNetworkInfo table (output columns as Microsoft's function pages list them); FileProfile() and SeenBy()
are located "needs the service" errors."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from assay import kql
from assay.engine import DuckDBEngine
from assay.errors import KqlBindError, KqlUnsupportedError


@pytest.fixture(scope="module")
def network() -> Iterator[DuckDBEngine]:
    with DuckDBEngine(None) as engine:
        engine.connection.execute("""CREATE TABLE DeviceNetworkInfo (Timestamp TIMESTAMP, DeviceId VARCHAR,
            DeviceName VARCHAR, NetworkAdapterName VARCHAR, NetworkAdapterType VARCHAR, ConnectedNetworks JSON,
            IPAddresses JSON)""")
        engine.connection.execute("""INSERT INTO DeviceNetworkInfo VALUES
            ('2024-05-01 08:00', 'dev-1', 'ws-01.contoso.com', 'Ethernet', 'Ethernet', '[{"Name": "corp"}]',
             '[{"IPAddress": "10.0.0.5", "AddressType": "Private"}]'),
            ('2024-05-01 12:00', 'dev-1', 'ws-01.contoso.com', 'Ethernet', 'Ethernet', '[{"Name": "corp"}]',
             '[{"IPAddress": "10.0.0.6", "AddressType": "Private"}, {"IPAddress": "fe80::1", "AddressType": "LinkLocal"}]'),
            ('2024-05-01 09:00', 'dev-2', 'ws-02.contoso.com', 'Wi-Fi', 'Wireless80211', '[]',
             '[{"IPAddress": "10.0.0.5", "AddressType": "Private"}]')""")
        yield engine


def test_assigned_ip_addresses_latest_and_at_a_time(network: DuckDBEngine) -> None:
    result = kql.run("AssignedIPAddresses('ws-01.contoso.com')", db=network)
    assert result.column_names == ("Timestamp", "IPAddress", "IPType", "NetworkAdapterType", "ConnectedNetworks")
    assert sorted(r[1] for r in result.rows) == ["10.0.0.6", "fe80::1"]
    result = kql.run("AssignedIPAddresses('dev-1', datetime(2024-05-01 10:00)) | project IPAddress, IPType",
                     db=network)
    assert result.rows == (("10.0.0.5", "Private"),)


def test_device_from_ip_over_the_pipe_input(network: DuckDBEngine) -> None:
    query = "datatable(LocalIP: string) ['10.0.0.5', '192.0.2.9'] | project IP = LocalIP | invoke DeviceFromIP()"
    result = kql.run(query, db=network)
    assert result.column_names == ("IP", "DeviceId")
    assert sorted(result.rows) == [("10.0.0.5", "dev-1"), ("10.0.0.5", "dev-2")]


@pytest.mark.parametrize(("query", "name"), [
    ("DeviceProcessEvents | invoke FileProfile(SHA1, 1000) | where GlobalPrevalence < 50", "FileProfile"),
    ("DeviceProcessEvents | invoke FileProfile()", "FileProfile"),
    ("DeviceProcessEvents | invoke SeenBy()", "SeenBy"),
])
def test_service_functions_are_located_errors(query: str, name: str) -> None:
    with pytest.raises(KqlUnsupportedError, match=f"{name}\\(\\) needs Microsoft Defender's service") as caught:
        kql.check(query)
    assert caught.value.span.col == 23


def test_local_function_without_its_table_names_the_table() -> None:
    with pytest.raises(KqlBindError, match="reads the DeviceNetworkInfo table") as caught:
        kql.check("print x = 1 | join (AssignedIPAddresses('ws-01')) on $left.x == $right.Timestamp",
                  tables={"T": [("a", "string")]})
    assert caught.value.span.col == 21
