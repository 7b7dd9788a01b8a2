"""Version-information facts of well-known Windows binaries, so synthesized events carry realistic PE metadata.

Values are those Windows 10 22H2 (build 19041/19045) and Microsoft 365 Apps report in Sysmon EID 1/7 and in
Defender's ProcessVersionInfo* columns. Keyed by the lower-case OriginalFileName's base name, because a renamed
binary keeps its version resource (that is how rules catch a renamed cmstp.exe).
"""

from __future__ import annotations

from dataclasses import dataclass

WINDOWS_PRODUCT = "Microsoft® Windows® Operating System"
MICROSOFT = "Microsoft Corporation"


@dataclass(frozen=True)
class BinaryInfo:
    """The version resource of a PE file, as Sysmon prints it."""

    original_file_name: str
    description: str
    file_version: str = "10.0.19041.1 (WinBuild.160101.0800)"
    product: str = WINDOWS_PRODUCT
    company: str = MICROSOFT
    #: Typical size in bytes (Defender FileSize).
    size: int = 200_000
    signer: str = "Microsoft Windows"

    @property
    def product_version(self) -> str:
        return self.file_version.split(" ", 1)[0]


#: Sysmon prints "-" for a field the PE has no version resource for.
UNKNOWN = BinaryInfo(original_file_name="-", description="-", file_version="-", product="-", company="-",
                     size=94_720, signer="")

KNOWN_BINARIES: dict[str, BinaryInfo] = {
    info.original_file_name.lower(): info
    for info in (
        BinaryInfo("CMSTP.EXE", "Microsoft Connection Manager Profile Installer", "7.2.19041.1 (WinBuild.160101.0800)",
                   size=98_304),
        BinaryInfo("Cmd.Exe", "Windows Command Processor", "10.0.19041.746 (WinBuild.160101.0800)", size=289_792),
        BinaryInfo("PowerShell.EXE", "Windows PowerShell", "10.0.19041.1 (WinBuild.160101.0800)", size=452_608),
        BinaryInfo("pwsh.dll", "pwsh", "7.4.6", "PowerShell", MICROSOFT, 287_120, "Microsoft Corporation"),
        BinaryInfo("CALC.EXE", "Windows Calculator", "10.0.19041.1 (WinBuild.160101.0800)", size=27_648),
        BinaryInfo("EXPLORER.EXE", "Windows Explorer", "10.0.19041.3636 (WinBuild.160101.0800)", size=4_840_960),
        BinaryInfo("RUNDLL32.EXE", "Windows host process (Rundll32)", "10.0.19041.3636 (WinBuild.160101.0800)",
                   size=71_680),
        BinaryInfo("REGSVR32.EXE", "Microsoft(C) Register Server", "10.0.19041.1 (WinBuild.160101.0800)",
                   size=25_088),
        BinaryInfo("MSHTA.EXE", "Microsoft (R) HTML Application host", "11.00.19041.1 (WinBuild.160101.0800)",
                   "Internet Explorer", size=14_336),
        BinaryInfo("wscript.exe", "Microsoft ® Windows Based Script Host", "5.812.10240.16384",
                   "Microsoft ® Windows Script Host", size=166_912),
        BinaryInfo("cscript.exe", "Microsoft ® Console Based Script Host", "5.812.10240.16384",
                   "Microsoft ® Windows Script Host", size=161_792),
        BinaryInfo("WinWord.exe", "Microsoft Word", "16.0.17328.20162", "Microsoft Office", size=1_620_344,
                   signer="Microsoft Corporation"),
        BinaryInfo("Excel.exe", "Microsoft Excel", "16.0.17328.20162", "Microsoft Office", size=62_523_256,
                   signer="Microsoft Corporation"),
        BinaryInfo("Outlook.exe", "Microsoft Outlook", "16.0.17328.20162", "Microsoft Outlook", size=42_194_296,
                   signer="Microsoft Corporation"),
        BinaryInfo("msiexec.exe", "Windows® installer", "5.0.19041.3636 (WinBuild.160101.0800)",
                   "Windows Installer - Unicode", size=66_048),
        BinaryInfo("dllhost.exe", "COM Surrogate", "10.0.19041.546 (WinBuild.160101.0800)", size=20_384),
        BinaryInfo("svchost.exe", "Host Process for Windows Services", "10.0.19041.1806 (WinBuild.160101.0800)",
                   size=55_320),
        BinaryInfo("services.exe", "Services and Controller app", "10.0.19041.3636 (WinBuild.160101.0800)",
                   size=720_352),
        BinaryInfo("NOTEPAD.EXE", "Notepad", "10.0.19041.3758 (WinBuild.160101.0800)", size=201_216),
        BinaryInfo("CONHOST.EXE", "Console Window Host", "10.0.19041.3636 (WinBuild.160101.0800)", size=864_256),
        BinaryInfo("CertUtil.exe", "CertUtil.exe", "10.0.19041.3636 (WinBuild.160101.0800)", size=1_557_504),
        BinaryInfo("MMC.EXE", "Microsoft Management Console", "10.0.19041.3636 (WinBuild.160101.0800)",
                   size=1_839_104),
        BinaryInfo("rasphone.exe", "Remote Access Phonebook", "10.0.19041.1 (WinBuild.160101.0800)", size=59_904),
        BinaryInfo("taskmgr.exe", "Task Manager", "10.0.19041.3636 (WinBuild.160101.0800)", size=1_355_776),
        BinaryInfo("WmiPrvSE.exe", "WMI Provider Host", "10.0.19041.3636 (WinBuild.160101.0800)", size=496_640),
        BinaryInfo("CCMEXEC.EXE", "Host Process for Microsoft Configuration Manager", "5.0.9122.1000",
                   "System Center Configuration Manager", size=255_424, signer="Microsoft Corporation"),
        BinaryInfo("GpScript.exe", "Group Policy Script Application", "10.0.19041.1 (WinBuild.160101.0800)",
                   size=44_544),
        # Modules (Sysmon EID 7 / DeviceImageLoadEvents)
        BinaryInfo("scrobj.dll", "Windows ® Script Component Runtime", "5.812.10240.16384",
                   "Microsoft ® Windows Script Host", size=51_712),
        BinaryInfo("cmstplua.dll", "Microsoft Connection Manager Admin API Helper for Setup",
                   "7.2.19041.1 (WinBuild.160101.0800)", size=23_040),
        BinaryInfo("cmdial32.dll", "Microsoft Connection Manager", "7.2.19041.3636 (WinBuild.160101.0800)",
                   size=579_072),
        BinaryInfo("cmlua.dll", "Connection Manager Admin API Helper", "7.2.19041.1 (WinBuild.160101.0800)",
                   size=39_936),
        BinaryInfo("AMSI.DLL", "Anti-Malware Scan Interface", "10.0.19041.3636 (WinBuild.160101.0800)",
                   size=80_896),
        BinaryInfo("jscript.dll", "Microsoft ® JScript", "5.812.10240.16384", "Microsoft ® Windows Script",
                   size=820_224),
        BinaryInfo("vbscript.dll", "Microsoft ® VBScript", "5.812.10240.16384", "Microsoft ® Windows Script",
                   size=576_000),
        BinaryInfo("urlmon.dll", "OLE32 Extensions for Win32", "11.00.19041.3636 (WinBuild.160101.0800)",
                   "Internet Explorer", size=1_561_600),
        BinaryInfo("wininet.dll", "Internet Extensions for Win32", "11.00.19041.3636 (WinBuild.160101.0800)",
                   "Internet Explorer", size=4_812_800),
    )
}


#: File names whose OriginalFileName differs from the file name (PowerShell 7 ships as pwsh.exe / pwsh.dll).
FILE_NAME_ALIASES: dict[str, str] = {"pwsh.exe": "pwsh.dll"}


def binary_info(file_name: str, original_file_name: str | None = None) -> BinaryInfo:
    """The version facts for an image: by its declared OriginalFileName, else by its file name, else UNKNOWN."""
    # A declared OriginalFileName is the binary's identity: a renamed copy of an unlisted tool must not take the
    # version facts of whatever known binary its new name imitates (7za.exe renamed to svchost.exe).
    for candidate in (original_file_name,) if original_file_name else (file_name,):
        lowered = candidate.lower()
        found = KNOWN_BINARIES.get(FILE_NAME_ALIASES.get(lowered, lowered))
        if found is not None:
            return found
    if original_file_name:
        return BinaryInfo(original_file_name=original_file_name, description="-", file_version="-", product="-",
                          company="-", size=UNKNOWN.size, signer="")
    return UNKNOWN
