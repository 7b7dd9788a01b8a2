"""The README is for users: short, its catalog section generated, and every `assay …` command it shows valid."""

from __future__ import annotations

import importlib.util
import re
import shlex

import click
import pytest

from assay.cli.main import cli
from tests.conftest import ROOT

README = ROOT / "README.md"


def _load_generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("gen_readme_catalog", ROOT / "scripts" / "gen_readme_catalog.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _shown_commands() -> list[str]:
    """Every `assay …` line inside the README's sh code blocks (comments dropped)."""
    text = README.read_text(encoding="utf-8")
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            for part in re.split(r"\s*&&\s*", line):
                if part.startswith("assay "):
                    commands.append(part.split(" > ")[0].strip())
    return commands


def test_readme_is_short() -> None:
    assert README.stat().st_size <= 15_000, "README.md is for users: move details to docs/"


def test_readme_catalog_section_is_generated_and_current() -> None:
    generator = _load_generator()
    current = README.read_text(encoding="utf-8")
    assert generator.render(current, generator.catalog_block()) == current, \
        "README.md's catalog section is stale: run python scripts/gen_readme_catalog.py"


def test_catalog_section_groups_every_detection_by_tactic(tmp_path) -> None:  # type: ignore[no-untyped-def]
    block = _load_generator().catalog_block()
    folders = sorted(p.parent.name for p in (ROOT / "detections").glob("*/detection.yml"))
    for folder in folders:
        assert f"detections/{folder}/" in block, f"{folder} is missing from the README catalog section"
    assert re.search(rf"^{len(folders)} detections, ", block.splitlines()[2])
    for folder in folders:
        assert block.count(f"detections/{folder}/") == 1, f"{folder} is listed more than once"


@pytest.mark.parametrize("command", _shown_commands())
def test_every_command_the_readme_shows_exists_with_its_options(command: str) -> None:
    """Each command resolves to a real (sub)command, and each option it uses is one that command accepts."""
    words = shlex.split(command)[1:]
    target: click.Command = cli
    context = click.Context(cli)
    while isinstance(target, click.Group) and words and not words[0].startswith("-"):
        sub = target.get_command(context, words[0])
        if sub is None and target.get_command(context, "run") is not None:
            sub, words = target.get_command(context, "run"), ["run", *words]  # `assay kql QUERY` means `kql run`
        if sub is None:
            break
        target, words = sub, words[1:]
    assert not isinstance(target, click.Group), f"{command!r} does not name a command"
    known = {name for param in target.params for name in getattr(param, "opts", [])}
    known |= {"--help", "-h"}
    for word in words:
        if word.startswith("-"):
            option = word.split("=")[0]
            assert option in known, f"{command!r}: {target.name} has no option {option} (has {sorted(known)})"


def test_pre_commit_hooks_run_real_commands() -> None:
    """.pre-commit-hooks.yaml is valid YAML whose entries are assay commands with options they accept."""
    import yaml

    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    assert {hook["id"] for hook in hooks} == {"assay-lint", "assay-test-changed"}
    for hook in hooks:
        assert hook["entry"].startswith("assay ") and hook["files"] == "^detections/"
        test_every_command_the_readme_shows_exists_with_its_options(hook["entry"])
