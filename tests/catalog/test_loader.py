"""The loader names file:line:col for every problem and loads each folder once."""

from __future__ import annotations

from pathlib import Path

import pytest

from assay.catalog import CatalogLoadError, load_catalog, load_detection
from assay.errors import CatalogError
from tests.catalog.conftest import CMSTP, Edit, line_of


def only_error(folder: Path) -> CatalogError:
    with pytest.raises(CatalogLoadError) as caught:
        load_detection(folder)
    assert len(caught.value.errors) >= 1
    return caught.value.errors[0]


def test_malformed_yaml_names_line_and_column(cmstp_copy: Path, edit: Edit) -> None:
    path = edit("detection.yml", "status: test\n", "status: test: broken\n")
    error = only_error(cmstp_copy)
    assert error.span is not None and error.span.file == str(path)
    assert (error.span.line, error.span.col) == (line_of(path, "status: test: broken"), 13)
    assert "malformed YAML" in error.message


def test_unknown_key_suggests_the_closest_valid_key(cmstp_copy: Path, edit: Edit) -> None:
    path = edit("detection.yml", "\nseverity: high", "\nseverty: high")
    with pytest.raises(CatalogLoadError) as caught:
        load_detection(cmstp_copy)
    unknown = next(e for e in caught.value.errors if "unknown key" in e.message)
    assert unknown.hint == "did you mean 'severity'?"
    assert unknown.span is not None and (unknown.span.line, unknown.span.col) == (line_of(path, "severty:"), 1)


def test_unknown_nested_key_in_a_scenario_points_at_the_key(cmstp_copy: Path, edit: Edit) -> None:
    path = edit("tests.yml", "          parent: cmd\n", "          parnet: cmd\n")
    error = only_error(cmstp_copy)
    assert error.message == "unknown key 'parnet'" and error.hint == "did you mean 'parent'?"
    assert error.span is not None and (error.span.line, error.span.col) == (line_of(path, "parnet: cmd"), 11)


def test_wrong_type_names_the_field_and_what_was_given(cmstp_copy: Path, edit: Edit) -> None:
    path = edit("detection.yml", "confidence: high", "confidence: [high]")
    error = only_error(cmstp_copy)
    assert error.message.startswith("confidence:") and "got a list" in error.message
    assert error.span is not None and (error.span.line, error.span.col) == (line_of(path, "confidence:"), 13)


def test_wrong_outcome_in_a_scenario(cmstp_copy: Path, edit: Edit) -> None:
    path = edit("tests.yml", "      kql: fires\n", "      kql: alert\n")
    error = only_error(cmstp_copy)
    assert "scenarios[0].expected.kql" in error.message and "'fires' or 'does-not-fire'" in error.message
    assert error.span is not None and error.span.line == line_of(path, "kql: alert")


def test_duplicate_key_is_reported_where_it_repeats(cmstp_copy: Path, edit: Edit) -> None:
    path = edit("detection.yml", "confidence: high\n", "confidence: high\nconfidence: low\n")
    error = only_error(cmstp_copy)
    assert "duplicate key" in error.message
    assert error.span is not None and error.span.line == line_of(path, "confidence: low")


def test_yaml_tags_are_rejected(cmstp_copy: Path, edit: Edit) -> None:
    edit("detection.yml", "status: test", "status: !!python/object:os.system test")
    error = only_error(cmstp_copy)
    assert "tag" in error.message


def test_missing_detection_file(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    error = only_error(tmp_path / "empty")
    assert "no detection.yml" in error.message


def test_every_error_of_a_folder_is_collected(cmstp_copy: Path, edit: Edit) -> None:
    edit("detection.yml", "\nseverity: high", "\nseverty: high")
    edit("tests.yml", "      kql: fires\n", "      kql: alert\n")
    with pytest.raises(CatalogLoadError) as caught:
        load_detection(cmstp_copy)
    files = {Path(e.span.file).name for e in caught.value.errors if e.span and e.span.file}
    assert files == {"detection.yml", "tests.yml"}


def test_catalog_keeps_good_detections_when_one_is_broken(cmstp_copy: Path, edit: Edit) -> None:
    broken = cmstp_copy.parent / "T0000-broken"
    broken.mkdir()
    (broken / "detection.yml").write_text("id: [\n", encoding="utf-8")
    catalog = load_catalog(cmstp_copy.parent)
    assert [d.path.name for d in catalog.detections] == [CMSTP.name]
    assert len(catalog.errors) == 1 and catalog.errors[0].span is not None
    assert Path(catalog.errors[0].span.file or "").parent.name == "T0000-broken"


def test_each_folder_loads_once_and_reloads_after_an_edit(cmstp_copy: Path, edit: Edit) -> None:
    first = load_detection(cmstp_copy)
    assert load_detection(cmstp_copy) is first
    edit("detection.yml", "title: Detect CMSTP in Microsoft Sentinel", "title: Detect CMSTP abuse (edited)")
    second = load_detection(cmstp_copy)
    assert second is not first and second.detection.title == "Detect CMSTP abuse (edited)"


def test_marks_point_into_the_files(cmstp_copy: Path) -> None:
    loaded = load_detection(cmstp_copy)
    span = loaded.span("tests", ("scenarios", 1, "provenance", "atomic", "guid"))
    assert span.source_line() is not None and "748cb4f6-2fb3-4e97-b7ad-b22635a09ab0" in (span.source_line() or "")
    technique = loaded.span("detection", ("technique",))
    assert (technique.source_line() or "").startswith("technique: T1218.003")


def test_ruamel_fallback_gives_the_same_data_and_marks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without libyaml the loader composes with ruamel.yaml (safe): same values, same positions."""
    import yaml

    from assay.catalog.loader import load_yaml

    path = CMSTP / "tests.yml"
    fast_data, fast_marks = load_yaml(path)
    monkeypatch.setattr(yaml, "__with_libyaml__", False)
    slow_data, slow_marks = load_yaml(path)
    assert slow_data == fast_data
    assert slow_marks.nodes == fast_marks.nodes and slow_marks.keys == fast_marks.keys


def test_merge_keys_are_refused_with_a_position(cmstp_copy: Path, edit: Edit) -> None:
    path = edit("tests.yml", "      host: *atomic_host\n", "      host:\n        <<: *atomic_host\n")
    error = only_error(cmstp_copy)
    assert "merge keys" in error.message and error.span is not None
    assert error.span.line == line_of(path, "<<: *atomic_host")


def test_alias_bombs_and_cycles_stop_with_an_error(tmp_path: Path) -> None:
    from assay.catalog.loader import load_yaml

    levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 10)}]" for i in range(8)]
    bomb = tmp_path / "bomb.yml"
    bomb.write_text("\n".join(levels) + "\n", encoding="utf-8")
    with pytest.raises(CatalogError, match="after expanding aliases"):
        load_yaml(bomb)
    cycle = tmp_path / "cycle.yml"
    cycle.write_text("&loop\nself: *loop\n", encoding="utf-8")
    with pytest.raises(CatalogError):
        load_yaml(cycle)
