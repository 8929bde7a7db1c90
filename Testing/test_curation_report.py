"""Issue 23, item 6: curation explains itself. On real sets where the default foreground gate
removes most slices (bladder tumours, stroke lesions), `segmote curate` names the gate and the
`--config` field, the report explains quota → bucket → global fill and why a class is short, and
draws a bar per class; every `--config` field is documented, and no curation text points to a
file outside the repository.
"""

from __future__ import annotations

import json
import re
from dataclasses import fields

from conftest import REPO
from faults_support import linked_pool
from PIL import Image

from SegMoTELib.cli import main as segmote
from SegMoTELib.curation import QCConfig

SETS = ("bladder_cancer_mri", "aisd_stroke_ncct", "jsrt_scr_chest_xray")


def test_the_run_names_the_gates_that_emptied_a_class_and_why_a_class_is_short(tmp_path, capsys):
    pool = linked_pool(tmp_path, SETS)
    out = tmp_path / "curated"
    assert segmote(["curate", str(pool), "--target", "60", "--out", str(out), "--workers", "2", "--no-export"]) == 0
    printed = capsys.readouterr().out
    # item 8: stdout is not a terminal here, so each work unit is one line as it finishes
    progress = [line for line in printed.splitlines() if line.startswith("[")]
    units = json.loads((out / "report" / "summary.json").read_text())["timing"]["units"]
    assert len(progress) == units and progress[-1].startswith(f"[{units}/{units}] ") and " records" in progress[-1]
    summary = json.loads((out / "report" / "summary.json").read_text())
    classes = summary["classes"]
    bladder = classes["bladder_cancer_mri"]
    removed = bladder["gates"]["gate_fg_ratio"]
    assert removed["below"] > 0.5 * bladder["records"]  # most of its slices: small tumours
    line = (f"bladder_cancer_mri: gate_fg_ratio removed {removed['removed']} of {bladder['records']} "
            f"({100 * removed['removed'] / bladder['records']:.0f} %): fg_ratio below fg_ratio_min = 0.02 in "
            f"{removed['below']}")
    assert line in printed and line in summary["notable_gates"]
    assert "gate_mean" not in " ".join(summary["notable_gates"])  # only gates that removed > 10 %
    # quota -> buckets -> global fill, consistent with what was selected
    assert sum(c["quota"] for c in classes.values()) == sum(c["selected"] for c in classes.values()) == 60
    for name, entry in classes.items():
        assert entry["from_buckets"] + entry["from_fill"] == entry["selected"], name
        assert entry["from_buckets"] <= min(entry["quota"], entry["passed"]), name
        assert entry["records"] == entry["passed"] + entry["rejected"]
        if entry["selected"] < entry["quota"]:
            assert entry["note"].startswith(f"short by {entry['quota'] - entry['selected']}") and \
                "gate_fg_ratio" in entry["note"], entry
            assert f"{name}: {entry['note']}" in printed
    assert sum(entry["from_fill"] for entry in classes.values()) == \
        sum(max(entry["quota"] - entry["from_buckets"], 0) for entry in classes.values())
    report = (out / "report" / "report.md").read_text()
    assert "## Gates that removed more than 10 % of a class" in report and f"- {line}" in report
    assert "## How the selection was made" in report and "| from its buckets | from the global fill |" in report
    assert "docs/CURATION.md" in report
    bars = Image.open(out / "report" / "classes.png")
    assert bars.size[0] > 300 and bars.size[1] > 100


def test_every_config_field_is_documented_with_its_default():
    text = (REPO / "docs" / "CURATION.md").read_text()
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]+) \|", text, flags=re.MULTILINE))
    for field in fields(QCConfig):
        assert field.name in rows, f"docs/CURATION.md does not document --config field {field.name}"
        assert float(rows[field.name]) == float(getattr(QCConfig(), field.name)), field.name


def test_curation_texts_point_only_to_files_in_the_repository():
    """DESIGN.md lived outside the repository: a user could not follow the references."""
    texts = [*sorted((REPO / "SegMoTELib" / "curation").glob("*.py")), REPO / "SegMoTELib" / "commands" / "curate.py",
             REPO / "docs" / "CURATION.md"]
    for path in texts:
        text = path.read_text()
        assert "DESIGN.md" not in text, path
        for reference in re.findall(r"\b((?:docs|configs|scripts)/[\w./-]+\.(?:md|json|py|sh))", text):
            assert (REPO / reference).is_file(), (path, reference)
