"""Quality-weighted sampling of curated records to an exact target T (docs/CURATION.md, section 4).

1. Class quotas q_i = N_i / ΣN_j · T, rounded by largest remainder so Σq_i = T. N_i counts all
   records of class i (gate failures included): a class whose slices fail the gates cannot fill
   its share, and the shortfall goes to the global fill (step 4).
2. Inside a class, records are ranked by slice index (records without one — 2D images — rank by
   their order in the input, i.e. file order) and split into `n_buckets` quantile buckets of
   equal rank ranges (sizes differ by at most one); bucket quotas are the largest-remainder shares
   of q_i proportional to bucket sizes.
3. Each bucket draws its quota among its gate-passing records without replacement with
   p ∝ score^(1/τ) (Efraimidis–Spirakis keys log(u)/w: the same distribution as drawing one at a
   time proportionally to the weights of those left).
4. Any deficit is filled by the same weighted draw over all gate-passing records not yet chosen.
Exactly T are selected, or every passing record (with a `CurationWarning`) when fewer exist.
Largest-remainder ties go to the earlier class/bucket (classes sorted by their key).
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from ..errors import InputError
from .config import QCConfig

CLASS_FIELDS = {"dataset": "dataset", "label": "label_name", "modality": "modality"}
_MIN_WEIGHT = 1e-12  # a zero score stays drawable, after every positive one


class CurationWarning(UserWarning):
    """Curation went on but the result differs from what was asked (e.g. fewer than T records)."""


def parse_class_by(class_by) -> tuple[str, ...]:
    """("dataset",), "dataset,label" or ["label", "modality"] → a validated tuple of names."""
    if isinstance(class_by, str):
        class_by = [part.strip() for part in class_by.split(",") if part.strip()]
    names = tuple(class_by or ())
    unknown = [name for name in names if name not in CLASS_FIELDS]
    if not names or unknown:
        raise InputError(f"class_by: expected a combination of {', '.join(CLASS_FIELDS)}, got {class_by!r}")
    return names


def class_key(record: dict, class_by: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(str(record.get(CLASS_FIELDS[name], "")) for name in class_by)


def largest_remainder(sizes, total: int) -> np.ndarray:
    """Integers proportional to `sizes` that sum to `total` (exact integer arithmetic)."""
    sizes = np.asarray(sizes, dtype=np.int64)
    whole = int(sizes.sum())
    if whole == 0:
        return np.zeros(sizes.size, dtype=np.int64)
    quotas = sizes * total // whole
    remainders = sizes * total - quotas * whole
    left = total - int(quotas.sum())
    order = np.lexsort((np.arange(sizes.size), -remainders))  # largest remainder, then earliest
    quotas[order[:left]] += 1
    return quotas


def sampling_weights(scores, tau: float) -> np.ndarray:
    scores = np.clip(np.asarray(scores, dtype=np.float64), 0.0, None)
    return np.maximum(scores ** (1.0 / tau), _MIN_WEIGHT)


def weighted_draw(candidates: np.ndarray, count: int, weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`count` of `candidates` without replacement, p ∝ weights[candidate] (Efraimidis–Spirakis)."""
    candidates = np.asarray(candidates, dtype=np.intp)
    if count <= 0 or candidates.size == 0:
        return np.zeros(0, dtype=np.intp)
    keys = np.log(rng.random(candidates.size)) / weights[candidates]
    if count >= candidates.size:
        return candidates
    return candidates[np.argpartition(-keys, count - 1)[:count]]


def slice_buckets(members: list[int], records: list[dict], n_buckets: int) -> list[np.ndarray]:
    """Quantile buckets of slice index (rank split); missing indices rank by input order."""
    def rank_key(index):
        position = records[index].get("slice_index")
        missing = position is None or (isinstance(position, float) and math.isnan(position))
        return (0, 0, index) if missing else (1, int(position), index)

    ranked = np.array(sorted(members, key=rank_key), dtype=np.intp)
    return list(np.array_split(ranked, n_buckets))


def sample_records(records: list[dict], target: int, class_by=("dataset",), seed: int = 0,
                   config: QCConfig | None = None) -> list[int]:
    """Indices (ascending) of the records selected for the curated set; see the module notes."""
    config = config or QCConfig()
    class_by = parse_class_by(class_by)
    if isinstance(target, bool) or not isinstance(target, (int, np.integer)) or target <= 0:
        raise InputError(f"target: expected a positive whole number of slices, got {target!r}")
    passed = np.array([bool(record.get("passed")) for record in records], dtype=bool)
    valid = np.flatnonzero(passed)
    if valid.size <= target:
        if valid.size < target:
            warnings.warn(f"only {valid.size} records pass the gates, fewer than the target {target}: "
                          "selecting all of them", CurationWarning, stacklevel=2)
        return valid.tolist()
    rng = np.random.default_rng(seed)
    weights = sampling_weights([record.get("score", 0.0) for record in records], config.tau)
    classes: dict[tuple, list[int]] = {}
    for index, record in enumerate(records):
        classes.setdefault(class_key(record, class_by), []).append(index)
    keys = sorted(classes)
    quotas = largest_remainder([len(classes[key]) for key in keys], int(target))
    chosen = np.zeros(len(records), dtype=bool)
    for key, quota in zip(keys, quotas):
        buckets = slice_buckets(classes[key], records, config.n_buckets)
        bucket_quotas = largest_remainder([bucket.size for bucket in buckets], int(quota))
        for bucket, bucket_quota in zip(buckets, bucket_quotas):
            candidates = bucket[passed[bucket]]
            chosen[weighted_draw(candidates, min(int(bucket_quota), candidates.size), weights, rng)] = True
    deficit = int(target) - int(chosen.sum())
    if deficit > 0:
        remaining = np.flatnonzero(passed & ~chosen)
        chosen[weighted_draw(remaining, deficit, weights, rng)] = True
    return np.flatnonzero(chosen).tolist()
