"""Issue 23, item 10: one spelling of the output option everywhere, and `segmote --version`."""

from __future__ import annotations

import re

import pytest
from conftest import REPO

from SegMoTELib.cli import build_parser, main

# Each command that writes files, with its other required arguments.
WRITERS = {"segment": ["image.png", "--auto"], "batch": ["cohort.csv"], "demo": [], "curate": ["pool", "--target", "5"],
           "train": ["config.json"], "evaluate": ["data"], "evaluate-3d": ["data"], "bench": []}


@pytest.mark.parametrize("command", sorted(WRITERS))
@pytest.mark.parametrize("flag", ["-o", "--out"])
def test_every_command_that_writes_takes_o_and_out(command, flag):
    args = build_parser().parse_args([command, *WRITERS[command], flag, "somewhere"])
    assert (args.output if command == "segment" else args.out) == "somewhere"


def test_version_is_the_packages(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    declared = re.search(r'^version = "([^"]+)"', (REPO / "pyproject.toml").read_text(), re.MULTILINE).group(1)
    assert capsys.readouterr().out.strip() == f"segmote {declared}"
