"""The "Tables" section of docs/kql-support.md, generated from the schema data: every table family Assay knows,
where its schema comes from and what fills it."""

from __future__ import annotations

import re
from collections.abc import Iterable

from assay.schema import canonical_tables, documented_tables, known_tables

#: Security families named by what they hold (prefix match on the table name, first match wins).
FAMILIES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Defender for Endpoint", "defender", ("Device",)),
    ("Defender for Office 365 (email, URLs)", "defender", ("Email", "UrlClick", "Message")),
    ("Defender for Identity / Entra ID (identity)", "defender", ("Identity", "AADSignInEvents", "AADSpnSignIn",
                                                                "EntraId", "GraphApi", "OAuthApp")),
    ("Defender alerts and behaviors", "defender", ("Alert", "Behavior", "Campaign", "Disruption",
                                                  "FileMaliciousContent")),
    ("Defender for Cloud Apps / cloud workloads", "defender", ("CloudApp", "CloudAudit", "CloudDns",
                                                              "CloudProcess", "CloudStorage")),
    ("Defender exposure management and data security", "defender", ("Exposure", "DataSecurity", "AIAgents")),
    ("Entra ID sign-in and audit logs", "azure-monitor", ("SigninLogs", "AADNonInteractive", "AADServicePrincipal",
                                                         "AADManagedIdentity", "AADProvisioning", "AADRisky",
                                                         "AADUser", "AuditLogs", "AADB2C", "AAD")),
    ("Windows and Linux hosts (Sentinel)", "azure-monitor", ("SecurityEvent", "WindowsEvent", "Event", "Syslog",
                                                            "Heartbeat", "W3CIISLog", "LinuxAudit", "Sysmon")),
    ("Network and CEF appliances", "azure-monitor", ("CommonSecurityLog", "ASimNetwork", "ASimDns", "DnsEvents",
                                                    "AzureFirewall", "NetworkAccess", "VMConnection")),
    ("Office 365 and Microsoft 365", "azure-monitor", ("OfficeActivity", "MicrosoftGraphActivityLogs",
                                                      "PowerBI", "Teams")),
    ("Sentinel incidents, alerts and threat intelligence", "azure-monitor", ("SecurityAlert", "SecurityIncident",
                                                                           "ThreatIntelligence", "Watchlist",
                                                                           "Anomalies", "BehaviorAnalytics",
                                                                           "UserPeerAnalytics", "SentinelHealth",
                                                                           "SentinelAudit", "IdentityInfo")),
    ("Azure activity and resource logs", "azure-monitor", ("AzureActivity", "AzureDiagnostics", "AzureMetrics")),
)
_PREFIX = re.compile(r"^(ASim|[A-Z]+(?=[A-Z][a-z])|[A-Z][a-z]+|[A-Z]+|_?[a-z]+)")


def family_of(name: str, source: str) -> str:
    for family, family_source, prefixes in FAMILIES:
        if (family_source in source) and name.startswith(prefixes):
            return family
    match = _PREFIX.match(name)
    prefix = match.group(1) if match else name
    return f"Azure Monitor: {prefix}*" if source == "azure-monitor" else f"Defender XDR: {prefix}*"


def _names(names: Iterable[str]) -> str:
    return ", ".join(f"`{n}`" for n in sorted(names))


def tables_markdown() -> str:
    """Markdown for the Tables section (a list of families, then the ingest-filled tables)."""
    tables = known_tables()
    filled = canonical_tables()
    by_family: dict[str, list[str]] = {}
    for name, table in tables.items():
        if name in filled:
            continue
        by_family.setdefault(family_of(name, table.source), []).append(name)
    named = [f for f, _, _ in FAMILIES if f in by_family]
    others = sorted(f for f in by_family if f not in named)
    both = sum(1 for entry in documented_tables().values() if entry["source"] == "defender+sentinel")
    lines = [
        "## Tables",
        "",
        f"Assay knows {len(tables)} tables: the {len(filled)} tables `assay ingest` fills from telemetry, and every "
        "table documented for Microsoft Defender XDR advanced hunting and for Microsoft Sentinel / Azure Monitor "
        "Logs (columns and Kusto types generated into `src/assay/schema/kql_tables.json` by "
        "`scripts/gen_kql_schemas.py` from Microsoft's documentation).",
        "",
        "- **Status `filled`**: ingestion maps telemetry (EVTX, Sysmon, Defender exports, ...) into the table.",
        "- **Status `known`**: queries over the table bind and run; the table is empty until rows are loaded with "
        "`assay ingest --table NAME FILE` (JSON lines, a JSON array or CSV with the column names as keys; bad "
        "rows are reported with file:line). The table is created, empty, when a query or a load first needs it.",
        f"- Tables documented in both forms ({both}: Device*, Email*, Identity*, Alert*, CloudAppEvents, "
        "UrlClickEvents, ...) have the Defender columns and the Sentinel ones; `TimeGenerated` is computed as "
        "`Timestamp` on every Defender table, so a query written for either product runs. `Type` is the table "
        "name wherever the documentation lists it. Both are computed (DuckDB generated columns), never stored.",
        "- Custom tables (`*_CL` logs, or any table): declare them in a schema file and pass `--schema FILE` to "
        "`assay kql`, `assay kql check` and `assay ingest --table`, or put the file in `.assay/schemas/`:",
        "",
        "```yaml",
        "tables:",
        "  MyApp_CL:",
        "    columns:",
        "      - [TimeGenerated, datetime]",
        "      - {name: UserName_s, type: string}",
        "  Heartbeat_CL: \"TimeGenerated:datetime, Computer:string\"",
        "```",
        "",
        "| family | status | tables |",
        "|---|---|---|",
        f"| Assay ingest-filled tables | filled | {_names(filled)} |",
    ]
    for family in [*named, *others]:
        lines.append(f"| {family} | known | {_names(by_family[family])} |")
    lines.append("")
    return "\n".join(lines)


__all__ = ["family_of", "tables_markdown"]
