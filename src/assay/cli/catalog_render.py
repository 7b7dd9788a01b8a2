"""Render a detection document (``assay.catalog.view.detection_document``) as the catalog page, for a terminal.

Plain text when stdout is not a TTY (stable, greppable); rich headings, panels and syntax highlighting on a TTY.
Sections follow the catalog page: title, description, ATT&CK, severity/confidence, explanation, query, data
sources and tables, false positives and tuning, playbook, investigation guide, hunting, scenarios, references.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import click

WIDTH = 110


def _sections(document: dict[str, Any]) -> list[tuple[str, list[tuple[str, str]]]]:
    """(section title, [(kind, text)]) where kind is 'text', 'code:kql', 'code:yaml' or 'list'."""
    attack = document["attack"]
    tactics = ", ".join(f"{t['name']} ({t['id']})" for t in attack["tactics"]) or "unknown"
    technique = attack["technique"]
    sub = attack["subtechnique"]
    attack_lines = [f"Tactic:         {tactics}",
                    f"Technique:      {technique['id']} {technique['name']}" if technique else
                    f"Technique:      {attack['technique_id']} (unknown in ATT&CK v{attack['version']})"]
    if sub:
        attack_lines.append(f"Sub-technique:  {sub['id']} {sub['name']}")
    if attack["url"]:
        attack_lines.append(f"Reference:      {attack['url']}")
    if attack["detection_strategies"]:
        attack_lines.append("Strategies:     " + "; ".join(f"{s['id']} {s['name']}"
                                                           for s in attack["detection_strategies"]))
    attack_lines.append(f"ATT&CK version: v{attack['version']}")

    query_parts: list[tuple[str, str]] = []
    if document["kql"]:
        query_parts.append(("code:kql", document["kql"].rstrip()))
    if document.get("alert"):
        query_parts.append(("text", f"Alert when: {document['alert']['predicate']}\n{document['alert']['reason']}"))

    playbook = [f"{n}. {step['title']}" + (f" [{step['phase']}]" if step.get("phase") else "") + f"\n{step['action']}"
                for n, step in enumerate(document["response"], start=1)]
    hunting: list[tuple[str, str]] = []
    for query in document["hunting"]:
        hunting.append(("text", f"{query['title']}\n{query['purpose']}"))
        hunting.append(("code:kql", query["query"].rstrip()))
    scenario_lines = []
    for scenario in document["scenarios"]:
        outcomes = ", ".join(f"{form}: {outcome}" for form, outcome in scenario["expected_outcomes"].items())
        scenario_lines.append(f"[{scenario['kind']}] {scenario['id']}: {scenario['title']}\n"
                              f"provenance: {scenario['provenance_label']}; expected {outcomes}"
                              + ("\ntelemetry: " + "; ".join(scenario["expected_telemetry"])
                                 if scenario["expected_telemetry"] else "")
                              + ("\nprocesses:\n" + "\n".join("  " + line for line in scenario["process_tree"])
                                 if scenario["process_tree"] else ""))
    differences = [f"{' vs '.join(d['forms'])} on {d['scenarios'] if d['scenarios'] == 'all' else ', '.join(d['scenarios'])}"
                   + (f" ({d['operator']})" if d.get("operator") else "") + f": {d['reason']}"
                   for d in document["known_differences"]]
    counts = document["scenario_counts"]
    sigma_info = _relative(document["paths"]["sigma"]) if document["paths"]["sigma"] else "(none)"
    return [
        ("MITRE ATT&CK", [("text", "\n".join(attack_lines))]),
        ("Severity and confidence", [("text", f"severity {document['severity']} · confidence "
                                              f"{document['confidence']} · status {document['status']}")]),
        ("Explanation", [("text", document["explanation"])]),
        ("KQL detection query (Microsoft Sentinel / Defender XDR)", query_parts),
        ("Portable Sigma rule", [("text", sigma_info)] + ([("code:yaml", document["sigma"].rstrip())]
                                                          if document["sigma"] else [])),
        ("Data sources", [("list", s) for s in document["data_sources"]]),
        ("Required tables", [("list", t) for t in document["required_tables"]]),
        ("False positives", [("list", f) for f in document["false_positives"]]),
        ("Tuning guidance", [("text", document["tuning"])]),
        ("Response playbook", [("text", p) for p in playbook]),
        ("Investigation guide", [("text", document["investigation"])]),
        ("Hunting queries", hunting),
        (f"Scenarios ({counts['total']}: {counts['attack']} attack, {counts['benign']} benign)",
         [("text", s) for s in scenario_lines]),
        ("Known differences between forms", [("text", d) for d in differences] or [("text", "none declared")]),
        ("References", [("list", r) for r in document["references"]]),
        ("Related detections", [("list", r) for r in document["related"]] or [("text", "none")]),
        ("About", [("text", f"id {document['id']} · author {document['author']} · created {document['created']} · "
                            f"modified {document['modified']} · forms {', '.join(document['forms'])}")]),
    ]


def _relative(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return path


def _wrap(text: str, indent: str = "") -> str:
    out = []
    for paragraph in text.splitlines() or [""]:
        if not paragraph.strip():
            out.append("")
            continue
        lead = paragraph[: len(paragraph) - len(paragraph.lstrip())]
        out.append(textwrap.fill(paragraph, width=WIDTH, initial_indent=indent + lead,
                                 subsequent_indent=indent + lead + ("   " if paragraph.lstrip()[:2] in ("- ", "1.")
                                                                    else ""),
                                 break_long_words=False, break_on_hyphens=False))
    return "\n".join(out)


def render_plain(document: dict[str, Any]) -> str:
    lines = [f"{document['title']}", f"{document['technique']} · Microsoft Sentinel · KQL · {document['id']}", "",
             _wrap(document["description"]), ""]
    for title, parts in _sections(document):
        lines.append(f"== {title} ==")
        for kind, text in parts:
            if kind.startswith("code"):
                lines.extend("    " + line for line in text.splitlines())
            elif kind == "list":
                lines.append(_wrap(f"- {text}"))
            else:
                lines.append(_wrap(text))
            if kind != "list":
                lines.append("")
        if parts and parts[-1][0] == "list":
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _kql_lexer() -> str:
    """Pygments' Kusto lexer when this Pygments has it (2.16+), SQL otherwise."""
    from pygments.lexers import get_lexer_by_name
    from pygments.util import ClassNotFound

    try:
        get_lexer_by_name("kql")
    except ClassNotFound:
        return "sql"
    return "kql"


def render_detection(document: dict[str, Any], *, rich: bool) -> None:
    """Print the page: rich on a TTY, plain otherwise."""
    if not rich:
        click.echo(render_plain(document), nl=False)
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.panel import Panel
    from rich.syntax import Syntax

    console = Console(highlight=False)  # content is prose and paths: no auto-colouring of numbers
    console.print(Panel(f"[bold]{escape(document['title'])}[/bold]\n{escape(document['technique'])} · Microsoft "
                        f"Sentinel · KQL · [dim]{escape(document['id'])}[/dim]\n\n{escape(document['description'])}",
                        expand=True))
    for title, parts in _sections(document):
        console.rule(f"[bold cyan]{escape(title)}[/bold cyan]", align="left")
        for kind, text in parts:
            if kind == "code:kql":
                console.print(Syntax(text, _kql_lexer(), word_wrap=True, background_color="default"))
            elif kind == "code:yaml":
                console.print(Syntax(text, "yaml", word_wrap=True, background_color="default"))
            elif kind == "list":
                console.print(f"  • {escape(text)}")
            else:
                console.print(escape(text))
                console.print()
