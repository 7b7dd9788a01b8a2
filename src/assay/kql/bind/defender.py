"""Microsoft Defender XDR's built-in hunting functions. Those that summarize a table Assay can hold are written
here in KQL over that table (AssignedIPAddresses, DeviceFromIP over DeviceNetworkInfo) and bound like a let
function; those that need Microsoft's cloud (FileProfile's global prevalence, SeenBy's device discovery) are
located errors that say so."""

from __future__ import annotations

from assay.kql import ast
from assay.kql.bind.aggregate import AggregateBinder
from assay.kql.bind.scope import Environment, FunctionLet

#: KQL written for Assay: each summarizes DeviceNetworkInfo as the Defender documentation describes the output.
LOCAL_FUNCTIONS: dict[str, tuple[str, str]] = {
    # the latest report of each adapter (at or before y), one row per assigned address
    "AssignedIPAddresses": ("DeviceNetworkInfo", """
let AssignedIPAddresses = (x: string, y: datetime = datetime(null)) {
    DeviceNetworkInfo
    | where DeviceId == x or DeviceName =~ x
    | where isnull(y) or Timestamp <= y
    | summarize arg_max(Timestamp, *) by NetworkAdapterName
    | mv-expand Address = IPAddresses
    | project Timestamp, IPAddress = tostring(Address.IPAddress), IPType = tostring(Address.AddressType),
              NetworkAdapterType, ConnectedNetworks
};"""),
    # the devices each input IP was assigned to (local addresses, from adapter reports)
    "DeviceFromIP": ("DeviceNetworkInfo", """
let DeviceFromIP = (T: (IP: string)) {
    T
    | project IP = tostring(IP)
    | distinct IP
    | join kind=inner (
        DeviceNetworkInfo
        | mv-expand Address = IPAddresses
        | project IP = tostring(Address.IPAddress), DeviceId
        | distinct IP, DeviceId
      ) on IP
    | project IP, DeviceId
};"""),
}

#: Functions whose answer only Microsoft's service has.
SERVICE_FUNCTIONS: dict[str, str] = {
    "FileProfile": "global file prevalence, signer and threat intelligence come from Microsoft's cloud",
    "SeenBy": "device discovery data (which onboarded devices saw a device) comes from Microsoft's service",
}


class DefenderFunctions(AggregateBinder):
    """Defender's built-in hunting functions as let functions, or a located "needs the service" error."""

    def builtin_function(self, name: str, pos: ast.Pos) -> FunctionLet | None:
        if name in SERVICE_FUNCTIONS:
            self.unsupported(f"{name}() needs Microsoft Defender's service: {SERVICE_FUNCTIONS[name]}", pos,
                             "run this part of the hunt in Defender, or drop the enrichment to run it offline")
        if name not in LOCAL_FUNCTIONS:
            return None
        table, text = LOCAL_FUNCTIONS[name]
        if table not in self.tables:
            self.fail(f"{name}() reads the {table} table, which is not loaded", pos,
                      f"ingest {table} (assay ingest) to answer {name}() offline")
        from assay.kql.parser import parse

        query = parse(text + "\nprint 0", file=f"<built-in {name}>")
        return FunctionLet(query.lets[0], Environment())
