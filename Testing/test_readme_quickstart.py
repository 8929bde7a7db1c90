"""Issue 23, item 3: the README's quick start is followable as written: no paths a user does not
have, voxel boxes that hold the demo phantom's structures, a cohort table that passes `--check`,
and a set-up script that says what it installs."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
from conftest import REPO

README = (REPO / "README.md").read_text()


def _section(title: str) -> str:
    start = README.index(f"## {title}")
    end = README.find("\n## ", start + 1)
    return README[start:end if end > 0 else None]


def _code_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL)


def test_no_user_facing_command_points_into_the_projects_shared_data():
    for block in _code_blocks(README):
        assert "../shared" not in block, block
    assert "../shared" not in _section("The model").split("To reproduce the adapter")[1].split("\n\n")[0]


def test_every_command_section_says_how_segmote_becomes_a_command():
    quick, command_line = _code_blocks(_section("Quick start"))[0], _code_blocks(_section("Command line"))[0]
    assert "source .venv/bin/activate" in quick and command_line.startswith("source .venv/bin/activate")
    assert "source .venv/bin/activate" in README.split("## ")[1]  # the first section says it too
    assert "DEMO_CPU_TIME" not in README


def test_the_quick_start_boxes_hold_the_demo_phantoms_structures():
    from SegMoTELib.phantom import make_phantom

    phantom = make_phantom(seed=0)  # what `segmote demo` writes as outputs/demo/phantom.nii.gz
    quick = _section("Quick start")
    boxes = {"spleen": re.search(r"--ijk-box ([\d ]+) --name spleen", quick).group(1).split()}
    boxes["left kidney"] = re.search(r'ijk-box:([\d,]+)",left kidney', quick).group(1).split(",")
    assert re.search(r'ijk-box:([\d,]+)",spleen', quick).group(1).split(",") == boxes["spleen"]
    for name, numbers in boxes.items():
        label = next(segment.label for segment in phantom.segments if segment.name == name)
        present = np.argwhere(phantom.labels == label)
        (k0, j0, i0), (k1, j1, i1) = present.min(axis=0), present.max(axis=0)
        assert [int(n) for n in numbers] == [i0, j0, k0, i1, j1, k1], name  # the structure's exact extent
    assert "i 30–65, j 53–99, k 28–50" in " ".join(quick.split())


def test_the_quick_start_table_passes_the_check(tmp_path):
    from SegMoTELib.io import write_volume
    from SegMoTELib.phantom import make_phantom

    (tmp_path / "outputs" / "demo").mkdir(parents=True)
    write_volume(make_phantom(seed=0).image, tmp_path / "outputs" / "demo" / "phantom.nii.gz")
    block = next(b for b in _code_blocks(_section("Quick start")) if "cohort.csv" in b)
    lines = [line.split("  #")[0].strip() for line in block.strip().splitlines()]
    for line in lines[:2]:  # the printf lines that write the table
        subprocess.run(["bash", "-c", line], cwd=tmp_path, check=True)
    check = lines[2].split()
    assert check[:2] == ["segmote", "batch"] and "--check" in check
    result = subprocess.run([sys.executable, "-m", "SegMoTELib.cli", *check[1:]], cwd=tmp_path, capture_output=True,
                            text=True, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0 and "all 2 rows can run: 1 studies, 2 structures" in result.stdout, result


def test_setup_says_what_it_installs_without_installing():
    result = subprocess.run(["bash", str(REPO / "scripts" / "setup.sh"), "--dry-run"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0
    pyproject = (REPO / "pyproject.toml").read_text()
    dependencies = re.findall(r'^    "([A-Za-z][\w.-]*)', pyproject.split("dependencies = [")[1].split("]")[0],
                              flags=re.MULTILINE)
    assert len(dependencies) > 10
    for name in dependencies + ["ray", "pytest", "slicer-core"]:
        assert name in result.stdout, name
    assert "1-3 GB" in result.stdout and result.stdout.startswith("setup: installs into .venv/")
