"""``assay site build`` and ``assay site serve``: exit codes, messages, and a server bound to localhost only."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner

from assay.cli.main import cli
from assay.site.serve import make_server, server_url
from tests.site.conftest import CMSTP_SLUG, copy_cmstp, write_hostile_detection


def test_build_reports_what_it_wrote(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    copy_cmstp(catalog)
    out = tmp_path / "site"
    result = CliRunner().invoke(cli, ["site", "build", "--catalog", str(catalog), "--out", str(out), "--no-report",
                                      "--format", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["detections"] == 1
    assert data["detection_pages"] == len(list((out / "detections" / CMSTP_SLUG).glob("*.html")))
    assert data["report"] is None and data["proof_status"] == {"untested": 1}
    assert (out / "index.html").is_file()


def test_build_text_output_says_where_to_open_it(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    write_hostile_detection(catalog)
    out = tmp_path / "site"
    result = CliRunner().invoke(cli, ["site", "build", "--catalog", str(catalog), "--out", str(out), "--no-report"])
    assert result.exit_code == 0, result.output
    # A page for the native KQL, one for the Sigma rule, one per conversion target.
    from assay.sigma.conversion import TARGETS

    assert f"Built {2 + len(TARGETS)} page(s) for 1 detection(s)" in result.output
    assert f"Open {(out / 'index.html').resolve()}" in result.output
    assert "No proof report" in result.output


def test_build_with_a_broken_detection_publishes_the_rest_and_exits_1(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    write_hostile_detection(catalog)
    broken = catalog / "T1059.001-powershell"
    broken.mkdir()
    (broken / "detection.yml").write_text("id: not-a-uuid\ntitle: Encoded PowerShell\n", encoding="utf-8")
    out = tmp_path / "site"
    result = CliRunner().invoke(cli, ["site", "build", "--catalog", str(catalog), "--out", str(out), "--no-report"])
    assert result.exit_code == 1
    assert "T1059.001-powershell" in result.output and "left out of the site" in result.output
    assert (out / "detections" / "t1218.010-regsvr32" / "sentinel-kql.html").is_file()
    assert "Traceback" not in result.output


def test_build_into_a_foreign_folder_is_a_clear_error(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    write_hostile_detection(catalog)
    out = tmp_path / "documents"
    out.mkdir()
    (out / "thesis.tex").write_text("\\documentclass{article}", encoding="utf-8")
    result = CliRunner().invoke(cli, ["site", "build", "--catalog", str(catalog), "--out", str(out)])
    assert result.exit_code == 1
    assert "not empty and was not built by `assay site build`" in result.output
    assert "Traceback" not in result.output


def test_bad_report_file_is_a_clear_error(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog"
    write_hostile_detection(catalog)
    report = tmp_path / "report.json"
    report.write_text('{"schema_version": 1, "run": {"started": "yesterday"', encoding="utf-8")
    result = CliRunner().invoke(cli, ["site", "build", "--catalog", str(catalog), "--out", str(tmp_path / "s"),
                                      "--report", str(report)])
    assert result.exit_code == 1
    assert "report.json" in result.output and "not valid JSON" in result.output


def test_report_and_no_report_together_is_a_usage_error(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    report.write_text("{}", encoding="utf-8")
    result = CliRunner().invoke(cli, ["site", "build", "--report", str(report), "--no-report"])
    assert result.exit_code == 2


@pytest.fixture()
def running_server(tmp_path: Path) -> Iterator[tuple[ThreadingHTTPServer, Path]]:
    catalog = tmp_path / "catalog"
    write_hostile_detection(catalog)
    out = tmp_path / "site"
    assert CliRunner().invoke(cli, ["site", "build", "--catalog", str(catalog), "--out", str(out),
                                    "--no-report"]).exit_code == 0
    (tmp_path / "secret.txt").write_text("outside the site", encoding="utf-8")
    server = make_server(out, 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, out
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_serve_binds_localhost_and_serves_the_site(running_server: tuple[ThreadingHTTPServer, Path]) -> None:
    server, _ = running_server
    assert server.server_address[0] == "127.0.0.1"
    url = server_url(server)
    with urllib.request.urlopen(url + "index.html", timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/html")
        assert b"ATT&amp;CK Enterprise matrix" in response.read()
    with urllib.request.urlopen(url + "detections/t1218.010-regsvr32/sentinel-kql.html", timeout=5) as response:
        assert response.status == 200


def test_serve_never_leaves_the_site_folder(running_server: tuple[ThreadingHTTPServer, Path]) -> None:
    server, _ = running_server
    for path in ("../secret.txt", "%2e%2e/secret.txt", "static/../../secret.txt"):
        request = urllib.request.Request(server_url(server) + path)
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                assert b"outside the site" not in response.read(), path
        except urllib.error.HTTPError as error:
            assert error.code == 404, path


def test_serve_without_a_built_site_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["site", "serve", "--out", str(tmp_path), "--port", "0"])
    assert result.exit_code == 1
    assert "no built site here" in result.output and "assay site build" in result.output


def test_serve_command_prints_its_url_and_serves(tmp_path: Path) -> None:
    import subprocess
    import sys

    catalog = tmp_path / "catalog"
    write_hostile_detection(catalog)
    out = tmp_path / "site"
    assert CliRunner().invoke(cli, ["site", "build", "--catalog", str(catalog), "--out", str(out),
                                    "--no-report"]).exit_code == 0
    process = subprocess.Popen([sys.executable, "-m", "assay.cli.main", "site", "serve", "--out", str(out),
                                "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith(f"Serving {out} on http://127.0.0.1:"), line
        url = line.split(" on ", 1)[1].split()[0]
        with urllib.request.urlopen(url + "platforms/sentinel-kql.html", timeout=5) as response:
            assert response.status == 200
            assert response.headers["Cache-Control"] == "no-store"
    finally:
        process.terminate()
        process.wait(timeout=10)
