"""Why each class of a curation run got what it got, in numbers and words.

Per class: its records, how many each gate removed (below its minimum, above its maximum) and the
`QCConfig` field that controls it; the gates that removed more than `NOTABLE_SHARE` of the class;
its quota, what its slice-position buckets could supply (a bucket draws only among its passing
records), what the global fill added; and, for a class short of its quota, why. The sampler's
steps are recomputed here from the records (quotas and bucket sizes are deterministic; only the
draw among passing records is random), so the explanation needs nothing from the draw itself.
See docs/CURATION.md for the steps.
"""

from __future__ import annotations

import numpy as np

from .config import QCConfig
from .gates import GATES
from .sampler import class_key, largest_remainder, slice_buckets

NOTABLE_SHARE = 0.10  # a gate that removed more than this share of a class's records is named


def class_name(record: dict, class_by) -> str:
    return " / ".join(class_key(record, class_by))


def explain_classes(records: list[dict], selected: list[int], target: int, class_by, config: QCConfig) -> dict:
    """{class: {records, passed, rejected, selected, quota, from_buckets, from_fill, gates,
    notable_gates, note}} (see the module notes)."""
    chosen = np.zeros(len(records), dtype=bool)
    chosen[list(selected)] = True
    members: dict[str, list[int]] = {}
    for index, record in enumerate(records):
        members.setdefault(class_name(record, class_by), []).append(index)
    passed_total = sum(bool(record["passed"]) for record in records)
    everything = passed_total <= target  # the sampler then takes every passing record: no quotas
    names = sorted(members, key=lambda name: tuple(name.split(" / ")))
    quotas = dict(zip(names, largest_remainder([len(members[name]) for name in names], int(target)).tolist()))
    classes = {}
    for name in names:
        indices = members[name]
        entry = {"records": len(indices), "passed": sum(bool(records[i]["passed"]) for i in indices),
                 "selected": int(chosen[indices].sum()), "quota": 0 if everything else int(quotas[name])}
        entry["rejected"] = entry["records"] - entry["passed"]
        entry["gates"] = _gate_counts(records, indices, config)
        entry["notable_gates"] = [gate for gate, counts in entry["gates"].items()
                                  if counts["removed"] > NOTABLE_SHARE * entry["records"]]
        supplied = entry["selected"] if everything else _bucket_supply(records, indices, entry["quota"], config)
        entry["from_buckets"] = min(supplied, entry["selected"])
        entry["from_fill"] = entry["selected"] - entry["from_buckets"]
        entry["note"] = _note(entry, everything, config)
        classes[name] = entry
    return classes


def _gate_counts(records: list[dict], indices: list[int], config: QCConfig) -> dict:
    counts = {}
    for gate in GATES:
        low, high = gate.bounds(config)
        values = np.array([float(records[i][gate.metric]) for i in indices], dtype=np.float64)
        below = int((values < low).sum()) if low is not None else 0
        above = int((values > high).sum()) if high is not None else 0
        counts[gate.name] = {"removed": below + above, "below": below, "above": above}
    return counts


def _bucket_supply(records: list[dict], indices: list[int], quota: int, config: QCConfig) -> int:
    """What the class's buckets can give: each its share of the quota, at most its passing records."""
    buckets = slice_buckets(indices, records, config.n_buckets)
    shares = largest_remainder([bucket.size for bucket in buckets], int(quota))
    return int(sum(min(int(share), sum(bool(records[i]["passed"]) for i in bucket))
                   for share, bucket in zip(shares, buckets)))


def gate_advice(gate_name: str, counts: dict, total: int, config: QCConfig) -> str:
    """e.g. 'gate_fg_ratio removed 56 of 65 (86 %): fg_ratio below fg_ratio_min = 0.02 in 56'."""
    gate = next(g for g in GATES if g.name == gate_name)
    parts = []
    if counts["below"]:
        parts.append(f"{gate.metric} below {gate.low_field} = {getattr(config, gate.low_field):g} in {counts['below']}")
    if counts["above"]:
        parts.append(f"{gate.metric} above {gate.high_field} = {getattr(config, gate.high_field):g} in {counts['above']}")
    share = 100.0 * counts["removed"] / max(total, 1)
    return f"{gate_name} removed {counts['removed']} of {total} ({share:.0f} %): {'; '.join(parts)}"


def _note(entry: dict, everything: bool, config: QCConfig) -> str:
    if everything:
        return "every passing record selected (fewer pass than the target)"
    quota, selected = entry["quota"], entry["selected"]
    notable = ", ".join(entry["notable_gates"]) or "the gates"
    if selected < quota:
        if entry["passed"] < quota:
            return f"short by {quota - selected}: only {entry['passed']} of its {entry['records']} records pass ({notable})"
        return (f"short by {quota - selected}: its {config.n_buckets} slice-position buckets could give "
                f"{entry['from_buckets']} of the {quota} their shares ask (a bucket draws only among its own passing "
                f"records; {notable} removed the others)")
    if entry["from_fill"]:
        return f"{entry['from_fill']} more from the global fill (other classes or buckets were short)"
    return ""
