"""The docs' tables are the saved runs': docs/generate.py rewrites them, and these tests fail when
a page and the saved runs under docs/runs disagree (a number edited by hand in either)."""

from __future__ import annotations

import importlib.util
import json
import pathlib
import re
import shutil

import pytest

from mini_flows.cli import main

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"docs_{name}", ROOT / "docs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generate = _module("generate")
rerun = _module("rerun")


def test_the_docs_agree_with_the_saved_runs():
    assert generate.stale_parts(ROOT) == []


def test_every_saved_run_the_docs_show_is_one_rerun_makes():
    blocks = [(m["kind"], m["what"]) for page in generate.pages(ROOT) for m in generate.BLOCK.finditer(page.read_text())]
    made = {str(run.path.relative_to(rerun.RUNS)) for run in rerun.planned(list(rerun.EXPERIMENTS))}
    runs = {what for kind, what in blocks if kind == "run"}
    assert runs and runs <= made, runs - made
    spreads = {what.split("/")[0] for kind, what in blocks if kind == "spread"}
    assert spreads and spreads <= set(rerun.SEEDS), spreads - set(rerun.SEEDS)


@pytest.fixture
def copy_of_the_docs(tmp_path):
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    shutil.copytree(ROOT / "docs", tmp_path / "docs", ignore=shutil.ignore_patterns("*.png", "__pycache__"))
    return tmp_path


def _first_run_shown(root: pathlib.Path) -> pathlib.Path:
    text = (root / "docs" / "results.md").read_text()
    what = next(m["what"] for m in generate.BLOCK.finditer(text) if m["kind"] == "run")
    return root / generate.RUNS / what / "results.json"


def test_a_saved_number_edited_by_hand_makes_the_check_fail(copy_of_the_docs):
    path = _first_run_shown(copy_of_the_docs)
    record = json.loads(path.read_text())
    row = next(r for r in record["table"]["rows"] if any(isinstance(c, dict) and isinstance(c["ours"], float) for c in r))
    cell = next(c for c in row[1:] if isinstance(c, dict) and isinstance(c["ours"], float))
    cell["ours"] += 0.01
    path.write_text(json.dumps(record))
    stale = generate.stale_parts(copy_of_the_docs)
    assert any(part.startswith("docs/results.md: run ") for part in stale), stale


def test_a_number_edited_by_hand_in_a_page_makes_the_check_fail(copy_of_the_docs):
    page = copy_of_the_docs / "docs" / "results.md"
    text = page.read_text()
    start = text.index("<!-- generated: run ")
    number = re.compile(r"\d\.\d{3}").search(text, start)
    page.write_text(text[: number.start()] + "9.999" + text[number.end():])
    assert generate.stale_parts(copy_of_the_docs) != []


def test_a_missing_saved_run_is_reported_not_raised(copy_of_the_docs):
    shutil.rmtree(_first_run_shown(copy_of_the_docs).parent)
    assert any("run " in part for part in generate.stale_parts(copy_of_the_docs))


def test_a_run_renders_from_its_results_as_it_printed(tmp_path, capsys):
    assert main(["run", "xor", "--quick", "--out", str(tmp_path / "xor")]) == 0
    printed = capsys.readouterr().out
    assert f"\n{generate.report(generate.load(tmp_path / 'xor'))}\n" in printed


def test_a_spread_cell_gives_mean_and_range_or_the_one_value():
    assert generate.spread_cell([{"ours": 1.0, "paper": None, "digits": 3}, {"ours": 2.0, "paper": 0.5, "digits": 3}]) \
        == "1.500 [1.000, 2.000]"
    assert generate.spread_cell([{"ours": 1.25, "paper": None, "digits": 2}] * 3) == "1.25"
    assert generate.spread_cell(["+0.0100 ± 0.0020", "-0.0300 ± 0.0010"]) == "-0.0100 [-0.0300, +0.0100]"
    assert generate.spread_cell(["0.680 (captures modes)", "0.371 (misses modes)"]) == "0.526 [0.371, 0.680]"
    assert generate.spread_cell(["0.22 / 0.19", "0.22 / 0.20"]) == "varies"
    assert generate.spread_cell(["-", "-"]) == "-"


def test_a_fresh_run_is_compared_with_the_saved_runs_range(copy_of_the_docs, tmp_path, capsys):
    name = next(iter(rerun.SEEDS))
    fresh = tmp_path / "fresh"
    shutil.copytree(copy_of_the_docs / generate.RUNS / name / "seed0", fresh)
    assert generate.compare(copy_of_the_docs, name, fresh) == 0
    record = generate.load(fresh)
    cell = next(c for r in record["table"]["rows"] for c in r[1:] if isinstance(c, dict) and isinstance(c["ours"], float))
    cell["ours"] = 1e6
    (fresh / "results.json").write_text(json.dumps(record))
    assert generate.compare(copy_of_the_docs, name, fresh) == 1
    assert "OUTSIDE" in capsys.readouterr().out


def test_rerun_plans_three_seeds_and_three_kernels_where_tables_move_and_two_kernels_elsewhere():
    runs = rerun.planned(["ising", "xor"])
    haswell, sandybridge = rerun.OTHER_KERNELS
    assert [(r.folder, r.seed, r.kernel) for r in runs] == [
        ("ising", 0, None), ("ising", 1, None), ("ising", 2, None), ("xor", 0, None),
        ("ising", 0, haswell), ("ising", 0, sandybridge), ("xor", 0, haswell)]
    assert runs[-1].path == rerun.RUNS / "xor" / "seed0-haswell"
    assert all(r.kernel is None for r in rerun.planned(list(rerun.ONE_KERNEL)))


def _layout() -> list[str]:
    """The paths the guide's layout names, each under the folder it is indented beneath."""
    text = (ROOT / "docs" / "guide.md").read_text()
    block = text[text.index("## Layout"):].split("```")[1]
    paths, folder = [], ""
    for line in block.strip("\n").splitlines():
        entry = re.match(r"^( *)(\S+)\s", line + " ")
        if not entry or (line.startswith(" ") and len(entry[1]) > 2):  # a description's continuation line
            continue
        name = entry[2]
        if not line.startswith(" "):
            folder = name if name.endswith("/") else ""
            paths.append(name)
        else:
            paths.append(folder + name)
    return paths


def test_every_path_in_the_layout_exists_where_it_is_drawn():
    paths = _layout()
    assert "mini_flows/cli.py" in paths and "mini_flows/experiments/" in paths
    missing = [p for p in paths if not (ROOT / p).exists()]
    assert missing == []
    drawn = {p for p in paths if p.startswith("mini_flows/") and p != "mini_flows/"}
    package = {f"mini_flows/{p.name}" + ("/" if p.is_dir() else "") for p in (ROOT / "mini_flows").iterdir()
               if p.name != "__pycache__" and p.name != "__init__.py"}
    assert package == drawn


@pytest.mark.parametrize("argv, status", [
    (["run", "nosuch"], 2), (["run", "xor", "--steps", "0"], 2), (["run", "xor", "--seed", "-1"], 2),
    (["run", "xor", "--data", "x.txt"], 2), (["run", "charlm", "--data", "missing.txt"], 2),
    (["sample", "not-a-run"], 2), (["bogus"], 2), (["run", "xor", "--backend", "cupy", "--quick"], 1)])
def test_the_exit_statuses_the_guide_states(argv, status, tmp_path, monkeypatch, capsys):
    import mini_flows.backend as B

    if argv[-2:] == ["cupy", "--quick"] and B.unavailable("cupy") is None:
        pytest.skip("CuPy and a GPU are here: the cupy backend runs")
    monkeypatch.chdir(tmp_path)
    assert main(argv) == status
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def _anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_link_between_the_pages_points_at_a_page_and_heading_that_exist():
    for page in generate.pages(ROOT):
        for target, anchor in re.findall(r"\]\(((?:docs/)?[\w./-]+\.md)(?:#([\w-]+))?\)", page.read_text()):
            path = (page.parent / target).resolve()
            assert path.exists(), f"{page.name} links to {target}, which does not exist"
            if anchor:
                headings = {_anchor(h) for h in re.findall(r"^#+ (.*)$", path.read_text(), flags=re.M)}
                assert anchor in headings, f"{page.name} links to {target}#{anchor}, which is no heading there"
