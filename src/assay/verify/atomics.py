"""Atomic Red Team → scenario stubs: each atomic test of a technique becomes a ``tests.yml`` scenario to complete.

A stub carries the test's GUID and name as provenance, its command with the default input arguments substituted
(``PathToAtomicsFolder`` as Invoke-AtomicRedTeam resolves it), the executor as the parent process (command_prompt
→ cmd.exe, powershell → powershell.exe, both launched by the Invoke-AtomicTest PowerShell session) and its
elevation requirement as the integrity level. Host, user and time are placeholders the engineer replaces; the
expected telemetry is left for them to write, since only they know what the payload does.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from assay.catalog.models import ScenarioFile
from assay.errors import SourceSpan, UsageError, VerifyError
from assay.verify.binaries import KNOWN_BINARIES
from assay.verify.synth import split_command_line

#: Where Invoke-AtomicRedTeam keeps the atomics on a test host.
DEFAULT_ATOMICS_FOLDER = "C:\\AtomicRedTeam\\atomics"
SYSTEM32 = "C:\\Windows\\System32"
POWERSHELL = f"{SYSTEM32}\\WindowsPowerShell\\v1.0\\powershell.exe"
EXECUTORS: dict[str, tuple[str, str]] = {
    # executor name -> (image, command line template); {command} is the test's command.
    "command_prompt": (f"{SYSTEM32}\\cmd.exe", '"C:\\Windows\\system32\\cmd.exe" /c {command}'),
    "powershell": (POWERSHELL, '"powershell.exe" & {{{command}}}'),
    "sh": ("/bin/sh", "sh -c {command}"),
    "bash": ("/bin/bash", "bash -c {command}"),
}
#: Placeholder facts the engineer replaces (realistic, so the stub runs as it is).
PLACEHOLDER_HOST = {"name": "WIN10-ATOMIC01", "domain": "lab.contoso.com"}
PLACEHOLDER_USER = {"domain": "CONTOSO", "name": "atomic.tester",
                    "sid": "S-1-5-21-3623811015-3361044348-30300820-1013"}
PLACEHOLDER_START = "2026-01-15T10:00:00Z"
_ARGUMENT = re.compile(r"#\{([A-Za-z0-9_]+)\}")
#: Binaries that live outside System32 on a default install.
OTHER_FOLDERS = {"powershell.exe": f"{SYSTEM32}\\WindowsPowerShell\\v1.0", "explorer.exe": "C:\\Windows"}


@dataclass(frozen=True)
class AtomicTest:
    technique: str
    guid: str
    name: str
    description: str
    executor: str
    command: str
    elevation_required: bool
    platforms: tuple[str, ...]


def atomics_file(atomics_dir: Path, technique: str) -> Path:
    """``<atomics>/<T>/<T>.yaml`` (``ATOMICS_DIR`` may be the atomics folder or the repository root)."""
    for base in (atomics_dir, atomics_dir / "atomics"):
        candidate = base / technique / f"{technique}.yaml"
        if candidate.is_file():
            return candidate
    raise UsageError(f"no Atomic Red Team tests for {technique} under {atomics_dir}",
                     SourceSpan.of_file(atomics_dir),
                     hint=f"point ATOMICS_DIR at the atomics folder (it holds {technique}/{technique}.yaml)")


def substitute(command: str, arguments: dict[str, Any], atomics_folder: str = DEFAULT_ATOMICS_FOLDER) -> str:
    """The command with each ``#{argument}`` replaced by its default (PathToAtomicsFolder resolved)."""
    def default(match: re.Match[str]) -> str:
        spec = arguments.get(match.group(1))
        if not isinstance(spec, dict) or "default" not in spec:
            return match.group(0)
        return str(spec["default"])

    text = command
    for _ in range(3):  # defaults may themselves reference arguments
        text = _ARGUMENT.sub(default, text)
    return re.sub(r"\$?PathToAtomicsFolder", lambda _: atomics_folder, text, flags=re.IGNORECASE)


def load_atomic_tests(path: Path) -> list[AtomicTest]:
    """The tests of one technique file (safe YAML); a file that is not an atomics file is a VerifyError."""
    text = path.read_text(encoding="utf-8")
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise VerifyError(f"not valid YAML: {getattr(error, 'problem', error)}",
                          SourceSpan(str(path), mark.line + 1 if mark else None, mark.column + 1 if mark else None,
                                     text)) from error
    if not isinstance(document, dict) or not isinstance(document.get("atomic_tests"), list):
        raise VerifyError("not an Atomic Red Team technique file (no atomic_tests list)", SourceSpan.of_file(path))
    technique = str(document.get("attack_technique", path.stem))
    tests = []
    for index, raw in enumerate(document["atomic_tests"]):
        if not isinstance(raw, dict):
            continue
        executor = raw.get("executor") or {}
        arguments = raw.get("input_arguments") or {}
        command = substitute(str(executor.get("command") or ""), arguments)
        tests.append(AtomicTest(
            technique=technique, guid=str(raw.get("auto_generated_guid") or ""), name=str(raw.get("name") or
                                                                                         f"test {index + 1}"),
            description=str(raw.get("description") or "").strip(), executor=str(executor.get("name") or "manual"),
            command=command.strip(), elevation_required=bool(executor.get("elevation_required", False)),
            platforms=tuple(str(p) for p in raw.get("supported_platforms") or ())))
    return tests


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60].strip("-")


def _image_for(token: str) -> str | None:
    """The full path of a command's program, when the command starts with one."""
    if not token:
        return None
    name = re.split(r"[\\/]", token)[-1]
    if "\\" in token or "/" in token:
        return token if name.lower().endswith(".exe") else None
    lowered = name.lower()
    if not lowered.endswith(".exe"):
        candidate = lowered + ".exe"
        if candidate not in KNOWN_BINARIES and candidate not in ("reg.exe", "schtasks.exe", "sc.exe", "net.exe"):
            return None
        lowered = candidate
    return f"{OTHER_FOLDERS.get(lowered, SYSTEM32)}\\{lowered}"


def scenario_stub(test: AtomicTest) -> dict[str, Any]:
    """One ``tests.yml`` scenario (plain data) for an atomic test."""
    image, template = EXECUTORS.get(test.executor, EXECUTORS["command_prompt"])
    one_line = " & ".join(line.strip() for line in test.command.splitlines() if line.strip()) \
        if test.executor == "command_prompt" else "; ".join(
            line.strip() for line in test.command.splitlines() if line.strip())
    integrity = "High" if test.elevation_required else "Medium"
    processes: list[dict[str, Any]] = [{
        "id": "executor",
        "image": image,
        "command_line": template.format(command=one_line),
        "parent_image": POWERSHELL,
        "parent_command_line": '"powershell.exe" -ExecutionPolicy Bypass -Command Invoke-AtomicTest '
                               f'{test.technique} -TestGuids {test.guid}',
        "integrity": integrity,
    }]
    for index, line in enumerate(line.strip() for line in test.command.splitlines() if line.strip()):
        args = split_command_line(line)
        program = _image_for(args[0]) if args else None
        if program is None:
            continue
        processes.append({"id": f"step{index + 1}", "image": program, "command_line": line, "parent": "executor",
                          "integrity": integrity})
    notes = (f"Stub generated by `assay atomics import` from Atomic Red Team {test.technique} test "
             f"{test.guid}. Replace the placeholder host, user and start time, add the files, registry writes, "
             "network connections and child processes the payload produces, write expected_telemetry, and "
             "set the expected columns of scoring queries.")
    if test.elevation_required:
        notes += " The test requires elevation: the executor runs at High integrity."
    return {
        "id": _slug(f"atomic-{test.name}"),
        "title": test.name,
        "kind": "attack",
        "provenance": {"atomic": {"guid": test.guid, "test": test.name, "technique": test.technique}},
        "expected": {"sigma": "fires", "kql": "fires"},
        "expected_telemetry": [f"Process creation: {p['image'].split(chr(92))[-1]} with command line "
                               f"{p['command_line']!r}" for p in processes[1:]] or
                              [f"Process creation: {image.split(chr(92))[-1]} running the test command"],
        "activity": {
            "host": dict(PLACEHOLDER_HOST),
            "user": dict(PLACEHOLDER_USER),
            "start": PLACEHOLDER_START,
            "processes": processes,
        },
        "notes": notes,
    }


class _StubDumper(yaml.SafeDumper):
    """Block style, multi-line strings as literal blocks, keys in the order given."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_StubDumper.add_representer(str, _represent_str)


def import_atomics(atomics_dir: str | Path, technique: str, *, windows_only: bool = True) -> str:
    """The ``tests.yml`` text of stubs for a technique's atomic tests (validated against the scenario model)."""
    if not re.fullmatch(r"T\d{4}(\.\d{3})?", technique.upper()):
        raise UsageError(f"{technique!r} is not an ATT&CK technique id", hint="e.g. --technique T1218.003")
    path = atomics_file(Path(atomics_dir), technique.upper())
    tests = [t for t in load_atomic_tests(path) if not windows_only or "windows" in t.platforms]
    if not tests:
        raise VerifyError(f"{technique} has no Windows atomic tests", SourceSpan.of_file(path))
    stubs = [scenario_stub(test) for test in tests]
    seen: dict[str, int] = {}
    for stub in stubs:  # two tests with the same name still get distinct ids
        count = seen.get(stub["id"], 0)
        seen[stub["id"]] = count + 1
        if count:
            stub["id"] = f"{stub['id']}-{count + 1}"
    document = {"scenarios": stubs}
    ScenarioFile.model_validate(document)  # a stub that does not load would be worse than none
    header = (f"# Scenario stubs for {technique} from Atomic Red Team ({path}), generated "
              f"{dt.date.today().isoformat()} by `assay atomics import`.\n"
              "# Complete each stub (see notes) and merge it into the detection's tests.yml.\n")
    body = yaml.dump(document, Dumper=_StubDumper, sort_keys=False, allow_unicode=True, width=120,
                     default_flow_style=False)
    return header + body
