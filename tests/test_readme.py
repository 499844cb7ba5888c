"""The README's commands stay true: CI runs the README's test command verbatim."""

from __future__ import annotations

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _commands() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    return {name: next(b.strip() for b in blocks if f"# {name}" in b) for name in ("main job", "tests")}


def test_ci_runs_the_readme_test_command():
    test_command = _commands()["tests"].splitlines()[-1]
    assert test_command in (ROOT / ".ci" / "run").read_text()


def test_readme_main_job_names_files_that_exist():
    main = _commands()["main job"]
    for script in re.findall(r"python (\S+\.py)", main):
        assert (ROOT / script).is_file(), script
