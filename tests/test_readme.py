"""The README's commands stay true: CI runs the README's test command verbatim."""

from __future__ import annotations

import pathlib
import re

from mini_flows.cli import _parser

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _commands() -> dict[str, str]:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    return {name: next(b.strip() for b in blocks if f"# {name}" in b) for name in ("main job", "tests")}


def test_ci_runs_the_readme_test_command():
    test_command = _commands()["tests"].splitlines()[-1]
    assert test_command in (ROOT / ".ci" / "run").read_text()


def test_readme_main_job_runs_an_installed_command_that_exists():
    main = _commands()["main job"]
    scripts = re.findall(r"^mini-flows = \"mini_flows.cli:main\"$", (ROOT / "pyproject.toml").read_text(), flags=re.M)
    assert scripts, "pyproject.toml must install the mini-flows command"
    subcommands = re.findall(r"mini-flows (\w+)", main)
    assert subcommands, main
    for sub in subcommands:
        assert _parser().parse_args([sub]).command == sub
