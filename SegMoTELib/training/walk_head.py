"""The walk's presence head from real walks: record, fit, calibrate (`modeling/presence.py`).

1. **Record.** On each training study (`WalkStack`), for each structure and a few seed slices, the
   model segments the seed from a jittered box of the truth, then walks both ways to the end of
   the stack exactly as `VolumeSegmenter` walks (`walk_rules.follow_prompt`), without stopping
   except on an empty mask. Every step keeps the presence head's input features, the mask's Dice
   with the truth on that slice, and what the hand rules would have said there. The walk goes on
   past the structure's end, into its neighbours: the steps there are the "wrong-structure" and
   "ended" examples the decision must reject.
2. **Fit** the head on those steps: target 1 where the mask is the structure (Dice ≥ 0.5).
3. **Calibrate** one threshold per modality family ("CT", "other") and one for all: the one whose
   replayed walks (patience 1) give the best mean 3D Dice per structure on the training studies,
   judged with out-of-fold probabilities (heads fitted without the study they score), so that the
   threshold is not fitted to the steps it judges.

`python -m SegMoTELib.training.walk_head --adapter A --walks DIR [DIR …] --out OUT` writes an
adapter with the head inside and its thresholds in the metadata ("walk"); with `--add-on`, only
the head (a small file the predictor attaches to the adapter it was fitted on). Embeddings can be
cached on disk (`--cache`): on a CPU they cost seconds per slice.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..geometry import SliceRef
from ..modeling.presence import PRESENT_DICE, PresenceHead
from ..predictor import Prediction
from ..preprocessing import as_model_uint8, to_model_input
from ..walk_rules import FAMILIES, PropagationRules, WalkJudge, follow_prompt, mean_grey
from .walks import WalkStack

THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.025), 3)
NEVER_STOP = PropagationRules(decision="rules", min_score=0.0, min_area_ratio=0.0, max_area_growth=None,
                              max_centroid_shift=None, max_intensity_shift=None, patience=0)


@dataclass
class Step:
    """One walk step: slice `row` of a stack, `distance` slices from the seed (0 = the seed)."""

    stack: int
    label: int
    seed: int             # the walk's seed (numbered over the whole recording)
    direction: int        # +1 / -1, or 0 for the seed slice itself
    distance: int
    family: str
    dice: float
    intersection: int
    area: int
    rule_stop: str | None  # the reason the default hand rules stop here (None: they go on)
    in_box: bool = False   # a walk inside the structure's tight 3D box (clipped to it, seeded with it)


class FeaturePredictor:
    """The predictor calls a walk makes (`set_image`, `predict`) on a SegMoTEModel, keeping the presence
    head's input features of each prediction (`last_features`). Embeddings are cached in memory and,
    with `cache_dir`, on disk."""

    def __init__(self, model, device, cache_dir: str | Path | None = None, optimize: bool = True):
        """`optimize`: the predictor's faster modules (same maths, `modeling.speed.accelerate_model`)."""
        self.model, self.device = model.eval(), torch.device(device)
        if optimize:
            from ..modeling.speed import accelerate_model

            accelerate_model(self.model, self.device)
        self.input_size = model.backbone.input_size
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.memory: dict[str, tuple] = {}
        self.current = None
        self.last_features: np.ndarray | None = None
        adapter = model.decoder.adapter
        self.has_presence_head = adapter.presence is not None

    def set_image(self, image: np.ndarray, modality: str = "auto", mapping=None) -> None:
        rgb = as_model_uint8(image, modality, mapping)
        key = hashlib.sha1(np.ascontiguousarray(rgb).data).hexdigest() + "x".join(map(str, rgb.shape))
        if key not in self.memory:
            if len(self.memory) > 256:
                self.memory.clear()
            self.memory[key] = self._embed(key, rgb)
        self.current = self.memory[key]

    def _embed(self, key: str, rgb: np.ndarray):
        path = self.cache_dir / f"{key}.pt" if self.cache_dir else None
        if path is not None and path.is_file():
            stored = torch.load(path, weights_only=True)
            embedding, early = stored["embedding"], stored["early"]
        else:
            model_input, _ = to_model_input(rgb, self.model.backbone, self.device)
            with torch.inference_mode():
                embedding, early = self.model.backbone.encode(model_input)
            embedding, early = embedding.float().cpu(), early.float().cpu()
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                torch.save({"embedding": embedding.half(), "early": early.half()}, path)
        from ..preprocessing import ImageTransform

        transform = ImageTransform.for_image(rgb.shape[0], rgb.shape[1], self.input_size)
        return embedding.float().to(self.device), early.float().to(self.device), transform

    def embed_images(self, images, **_ignored) -> None:
        for image in images:
            self.set_image(image)

    @torch.inference_mode()
    def predict(self, points=None, labels=None, box=None, mask_input=None, multimask=False,
                decoder=None) -> Prediction:
        """Always the SegMoTE decoder (the head reads it); `decoder` is accepted for the walk's calls."""
        embedding, early, transform = self.current
        device = self.device
        point_tensors = None
        if points is not None:
            point_tensors = (torch.as_tensor(transform.points_to_input(points)[None], dtype=torch.float32, device=device),
                             torch.as_tensor(np.asarray(labels)[None], device=device))
        boxes = None if box is None else torch.as_tensor(transform.boxes_to_input(np.asarray(box, float)[None]),
                                                         dtype=torch.float32, device=device)
        masks = None if mask_input is None else torch.as_tensor(np.asarray(mask_input, np.float32).reshape(
            1, 1, *np.shape(mask_input)[-2:]), device=device)
        sparse, dense = self.model.encode_prompts(points=point_tensors, boxes=boxes, masks=masks)
        output = self.model.decode(embedding, early, sparse, dense)
        chosen = int(output.chosen[0])
        self.last_features = output.presence_features()[0, chosen].float().cpu().numpy()
        logits = output.masks.float()
        mask = (transform.logits_to_image(logits) > 0)[0].cpu().numpy()
        presence = None if output.presence is None else torch.sigmoid(output.presence.float())[0].cpu().numpy()
        return Prediction(masks=mask, scores=output.iou.float()[0].cpu().numpy(),
                          low_res_logits=logits[0].cpu().numpy(), decoder="segmote", presence=presence)


def stack_segmenter(predictor, stack: WalkStack):
    """A VolumeSegmenter over a stack's 8-bit slices (rows along k, shown as stored)."""
    from ..segment3d import VolumeSegmenter
    from ..volume import Volume

    volume = Volume(stack.images if stack.images.ndim == 3 else stack.images[..., 0], np.zeros(3), np.ones(3), np.eye(3))
    segmenter = VolumeSegmenter(predictor, volume)  # uint8 under "auto": passed through unchanged
    segmenter.family = stack.family
    return segmenter


def _box_walk(truth: np.ndarray, present: np.ndarray) -> tuple[int, np.ndarray, int, int]:
    """(middle row, the 2D box x0, y0, x1, y1 of the structure over all its rows, first row, last row):
    what `segment_box3d` does with the structure's tight 3D box."""
    ys, xs = np.nonzero(truth.any(axis=0))
    first, last = int(present[0]), int(present[-1])
    box = np.array([xs.min(), ys.min(), max(xs.max(), xs.min() + 1), max(ys.max(), ys.min() + 1)])
    return (first + last) // 2, box, first, last


def _dice_parts(mask: np.ndarray, truth: np.ndarray) -> tuple[float, int]:
    intersection = int(np.count_nonzero(mask & truth))
    total = int(mask.sum()) + int(truth.sum())
    return (1.0 if total == 0 else 2.0 * intersection / total), intersection


def _jittered_box(truth: np.ndarray, rng: np.random.Generator, jitter: float = 0.02) -> np.ndarray:
    ys, xs = np.nonzero(truth)
    height, width = truth.shape
    shift = rng.normal(0, jitter * max(height, width), size=4)
    box = np.array([xs.min(), ys.min(), xs.max(), ys.max()], float) + shift
    box = np.clip(np.round(box), 0, [width - 1, height - 1, width - 1, height - 1])
    box[2], box[3] = max(box[2], box[0] + 1), max(box[3], box[1] + 1)
    return np.minimum(box, [width - 2, height - 2, width - 1, height - 1])


def record_walks(predictor: FeaturePredictor, stacks: list[WalkStack], seeds: int = 2, seed: int = 0,
                 rules: PropagationRules | None = None, log=print, box_walks: bool = False,
                 max_seconds: float | None = None):
    """(steps, features (N, F) float32, truth voxels per (stack, label)) of the walks on `stacks`;
    with `box_walks`, also each structure's 3D-box walk (seeded on the box's middle slice, clipped to it).
    `max_seconds`: no new stack is started after that long (the GPU command's time limit)."""
    rules = (rules or PropagationRules()).replace(decision="rules", patience=0)
    rng = np.random.default_rng(seed)
    steps: list[Step] = []
    features: list[np.ndarray] = []
    truth_voxels: dict[tuple[int, int], int] = {}
    seed_id = 0
    began = time.time()
    for number, stack in enumerate(stacks):
        if max_seconds is not None and time.time() - began > max_seconds:
            log(f"time limit: recorded {number} of {len(stacks)} studies")
            break
        started = time.time()
        segmenter = stack_segmenter(predictor, stack)
        for label in sorted(int(v) for v in np.unique(stack.labels) if v):
            truth = stack.labels == label
            truth_voxels[(number, label)] = int(truth.sum())
            areas = truth.reshape(len(truth), -1).sum(1)
            present = np.flatnonzero(areas)
            rows = [int(np.argmax(areas))] + [int(r) for r in rng.choice(present, size=min(seeds - 1, len(present)),
                                                                          replace=False)]
            box = _box_walk(truth, present) if box_walks else None
            walks = [(row, False) for row in dict.fromkeys(rows)] + ([(box[0], True)] if box else [])
            for seed_row, in_box in walks:
                if int(stack.images[seed_row].max()) == int(stack.images[seed_row].min()):
                    continue
                clip = box[1] if in_box else None
                limits = (box[2], box[3]) if in_box else (0, len(stack.images) - 1)
                prompt = clip if in_box else _jittered_box(truth[seed_row], rng)
                start = segmenter.predict_on(SliceRef(2, seed_row), clip_box=clip, box=prompt)
                seed_features = predictor.last_features
                dice, intersection = _dice_parts(start.mask2d, truth[seed_row])
                seed_id += 1
                steps.append(Step(number, label, seed_id, 0, 0, stack.family, dice, intersection, start.area, None,
                                  in_box))
                features.append(seed_features)
                if start.area == 0:
                    continue
                grey = mean_grey(segmenter.slice_image(start.ref), start.mask2d)
                for direction in (+1, -1):
                    judge = WalkJudge(rules, False, 0.0, in_box, grey)
                    previous, row = start, seed_row + direction
                    while limits[0] <= row <= limits[1]:
                        image = segmenter.slice_image(SliceRef(2, row))
                        if int(image.max()) == int(image.min()):
                            break  # padding outside the scan: the walk ends there ("blank slice")
                        result = segmenter.predict_on(SliceRef(2, row), clip_box=clip,
                                                      **follow_prompt(previous, rules, clip))
                        dice, intersection = _dice_parts(result.mask2d, truth[row])
                        verdict = judge.verdict(previous, result, image)
                        steps.append(Step(number, label, seed_id, direction, abs(row - seed_row), stack.family, dice,
                                          intersection, result.area, None if verdict is None else verdict[0], in_box))
                        features.append(predictor.last_features)
                        if result.area == 0:
                            break
                        if verdict is None:
                            judge.accepted(image, result)
                        previous, row = result, row + direction
        log(f"recorded {stack.dataset} {stack.case} ({len(stack.images)} slices) in {time.time() - started:.0f} s; "
            f"{len(steps)} steps so far")
    return steps, np.stack(features).astype(np.float32), truth_voxels


# --- replaying recorded walks under a decision -------------------------------------------------------
LEAK_SLICES = 4  # slices a walk still going past the structure at the stack's end is assumed to leak on


def replay_dice(steps: list[Step], keep: np.ndarray, truth_voxels: dict, patience: int = 1,
                leak_slices: int = LEAK_SLICES) -> dict:
    """3D Dice per (stack, label, seed) of the walks the recorded steps replay when each step is kept
    or not by `keep` (bool per step): a direction ends at its first rejected step, unless the next
    `patience` steps hold an accepted one (then the doubtful ones are kept, as the walk's bridge does).

    A stack holds only a few slices past each end of its structure: a walk that is still going, on
    a slice the structure has left, when the stack ends would go on in the real volume. Its last
    mask is counted `leak_slices` more times, so that never stopping is not mistaken for the best
    policy."""
    results: dict[tuple, list[int]] = {}
    chains: dict[tuple, list[int]] = {}
    leaks: dict[tuple, int] = {}
    for position, step in enumerate(steps):
        key = (step.stack, step.label, step.seed)
        if step.direction == 0:
            results.setdefault(key, []).insert(0, position)
        else:
            chains.setdefault((*key, step.direction), []).append(position)
    for chain, positions in chains.items():
        kept = results.setdefault(chain[:3], [])
        positions = sorted(positions, key=lambda p: steps[p].distance)
        index = 0
        while index < len(positions):
            if steps[positions[index]].area == 0:
                break
            if keep[positions[index]]:
                kept.append(positions[index])
                index += 1
                continue
            ahead = [i for i in range(index + 1, min(index + 1 + patience, len(positions)))
                     if keep[positions[i]] and steps[positions[i]].area > 0]
            if not ahead:
                break
            kept.extend(positions[index:ahead[0] + 1])
            index = ahead[0] + 1
        last = steps[kept[-1]] if kept else None
        if index >= len(positions) and last is not None and last.direction != 0 and last.intersection == 0:
            leaks.setdefault(chain[:3], 0)
            leaks[chain[:3]] += leak_slices * last.area
    dices = {}
    for key, positions in results.items():
        stack, label, _ = key
        intersection = sum(steps[p].intersection for p in positions)
        area = sum(steps[p].area for p in positions) + leaks.get(key, 0)
        dices[key] = 2.0 * intersection / max(area + truth_voxels[(stack, label)], 1)
    return dices


def rules_keep(steps: list[Step]) -> np.ndarray:
    return np.array([step.rule_stop is None and step.area > 0 for step in steps])


# A family gets a threshold of its own only when its walks cover this many structures; with fewer, the
# best of the threshold grid on its replayed Dice is mostly noise (the sarcoma-CT box walks of the v3
# calibration, 10 structures, chose 0.40 and stopped a CT spleen after 2 of its 5 boxed slices).
MIN_FAMILY_STRUCTURES = 20


def calibrate(steps: list[Step], probabilities: np.ndarray, truth_voxels: dict, patience: int = 1,
              in_box: bool = False) -> dict:
    """{"CT": t, "other": t, "default": t}: per family (and over all) the threshold of best mean replayed
    Dice, on the free walks (or, with `in_box`, on the 3D-box walks)."""
    families = np.array([step.family for step in steps])
    boxed = np.array([step.in_box for step in steps])
    thresholds = {}
    for family in ("default", *FAMILIES):
        chosen = (np.ones(len(steps), bool) if family == "default" else families == family) & (boxed == in_box)
        if not chosen.any():
            continue
        subset = [steps[i] for i in np.flatnonzero(chosen)]
        if family != "default" and len({(step.stack, step.label) for step in subset}) < MIN_FAMILY_STRUCTURES:
            # too few walks to choose among the thresholds for this family alone: the pooled one
            thresholds[family] = thresholds["default"]
            continue
        scores = [np.mean(list(replay_dice(subset, probabilities[chosen] >= t, truth_voxels, patience).values()))
                  for t in THRESHOLDS]
        thresholds[family] = float(THRESHOLDS[int(np.argmax(scores))])
    return {family: thresholds[family] for family in (*FAMILIES, "default") if family in thresholds}


# --- fitting the head -------------------------------------------------------------------------------
def fit_head(features: np.ndarray, targets: np.ndarray, dim: int, epochs: int = 300, lr: float = 2e-3,
             seed: int = 0, device="cpu", head: PresenceHead | None = None) -> PresenceHead:
    """Train a PresenceHead (or go on training `head`) on (features, 0/1 targets), class-balanced BCE."""
    torch.manual_seed(seed)
    # a head read from an adapter file comes frozen (inference): it trains here
    head = (head or PresenceHead(dim)).to(device).train().requires_grad_(True)
    x = torch.as_tensor(features, device=device)
    y = torch.as_tensor(targets, dtype=torch.float32, device=device)
    positives = float(y.sum())
    weight = torch.tensor((len(y) - positives) / max(positives, 1.0), device=device)
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.05)
    for _ in range(epochs):
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(head(x), y, pos_weight=weight)
        loss.backward()
        optimizer.step()
    return head.eval()


def cross_validated(features: np.ndarray, targets: np.ndarray, groups: np.ndarray, dim: int, epochs: int,
                    folds: int = 4, device="cpu", head: PresenceHead | None = None, seed: int = 0) -> np.ndarray:
    """Out-of-fold probabilities: each group (study) scored by a head fitted without it (from a copy of
    `head` when given). Thresholds calibrated on them are not fitted to the same steps they judge."""
    import copy

    fold_of = {group: number % folds for number, group in
               enumerate(np.random.default_rng(seed).permutation(np.unique(groups)))}
    folds_array = np.array([fold_of[group] for group in groups])
    probabilities = np.zeros(len(targets), dtype=np.float32)
    for fold in range(folds):
        test = folds_array == fold
        if not test.any() or test.all():
            continue
        fitted = fit_head(features[~test], targets[~test], dim, epochs=epochs, device=device,
                          head=None if head is None else copy.deepcopy(head))
        probabilities[test] = head_probabilities(fitted, features[test])
    return probabilities


def head_probabilities(head: PresenceHead, features: np.ndarray) -> np.ndarray:
    parameter = next(head.parameters())
    with torch.no_grad():
        return torch.sigmoid(head(torch.as_tensor(features, device=parameter.device))).cpu().numpy()


def step_targets(steps: list[Step]) -> np.ndarray:
    return np.array([step.dice >= PRESENT_DICE for step in steps], dtype=np.float32)


def summary(steps, keep_by_name: dict, truth_voxels: dict, patience: int = 1) -> dict:
    """Mean replayed Dice per family and over all, for each named decision."""
    out = {}
    families = np.array([s.family for s in steps])
    for name, keep in keep_by_name.items():
        row = {}
        for family in (*FAMILIES, "all"):
            chosen = np.ones(len(steps), bool) if family == "all" else families == family
            if chosen.any():
                subset = [steps[i] for i in np.flatnonzero(chosen)]
                dices = replay_dice(subset, keep[chosen], truth_voxels, patience)
                row[family] = {"structures": len(dices), "dice": float(np.mean(list(dices.values())))}
        out[name] = row
    return out


# --- command line -----------------------------------------------------------------------------------
def _load_stacks(folders, max_studies: int | None, seed: int) -> list[WalkStack]:
    """The stacks in a seeded random order (a time limit then still leaves a mix of every set)."""
    paths = sorted(p for folder in folders for p in Path(folder).glob("*.npz"))
    order = np.random.default_rng(seed).permutation(len(paths))
    paths = [paths[i] for i in order][:max_studies]
    return [WalkStack.load(p) for p in paths]


def main(argv=None) -> int:
    from ..backbones import load_backbone
    from ..modeling import SegMoTEModel
    from ..modeling.adapter_io import read_adapter, save_adapter, save_walk_head

    parser = argparse.ArgumentParser(description="fit and calibrate the walk's presence head on recorded walks")
    parser.add_argument("--adapter", required=True)
    parser.add_argument("--walks", nargs="+", required=True, help="folders of WalkStack .npz (training studies)")
    parser.add_argument("--out", required=True, help="the adapter to write (or, with --add-on, the head file)")
    parser.add_argument("--add-on", action="store_true", help="write only the head, to attach to --adapter")
    parser.add_argument("--checkpoint", default=None, help="backbone weights (default: the bundled ones)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cache", default=None, help="folder for cached slice embeddings")
    parser.add_argument("--max-studies", type=int, default=None)
    parser.add_argument("--max-seconds", type=float, default=None, help="start no new study after this long")
    parser.add_argument("--seeds", type=int, default=2, help="seed slices per structure")
    parser.add_argument("--epochs", type=int, default=50,
                        help="full-batch epochs of the head's fit (few: a few thousand steps overfit it)")
    parser.add_argument("--folds", type=int, default=4, help="folds (by study) of the out-of-fold calibration")
    parser.add_argument("--box-walks", action="store_true",
                        help="also record each structure's 3D-box walk and calibrate thresholds for walks in a box")
    parser.add_argument("--keep-head", action="store_true",
                        help="calibrate the adapter's own head without refitting it (adapters trained with one)")
    parser.add_argument("--records", default=None, help="also save the recorded steps (npz) here")
    args = parser.parse_args(argv)
    started = time.time()
    device = torch.device(args.device)
    model = SegMoTEModel.from_adapter(load_backbone("litemedsam", args.checkpoint), args.adapter).to(device)
    stacks = _load_stacks(args.walks, args.max_studies, 0)
    predictor = FeaturePredictor(model, device, args.cache)
    steps, features, truth_voxels = record_walks(predictor, stacks, seeds=args.seeds, box_walks=args.box_walks,
                                                 max_seconds=args.max_seconds)
    targets = step_targets(steps)
    dim = model.decoder.sam.transformer_dim
    head = model.decoder.adapter.presence
    groups = np.array([step.stack for step in steps])
    if head is not None and args.keep_head:
        probabilities = head_probabilities(head, features)
    else:
        probabilities = cross_validated(features, targets, groups, dim, args.epochs, args.folds, device, head)
        head = fit_head(features, targets, dim, epochs=args.epochs, device=device, head=head)
    thresholds = calibrate(steps, probabilities, truth_voxels)
    box_thresholds = calibrate(steps, probabilities, truth_voxels, in_box=True) if args.box_walks else {}
    replayed = {}
    for kind, table in (("free walks", thresholds), ("3D-box walks", box_thresholds)):
        chosen = np.array([s.in_box == (kind != "free walks") for s in steps])
        if not chosen.any() or not table:
            continue
        subset = [steps[i] for i in np.flatnonzero(chosen)]
        learned = probabilities[chosen] >= np.array([table.get(s.family, table["default"]) for s in subset])
        replayed[kind] = summary(subset, {"rules (IoU floor 0.5 and the other hand rules)": rules_keep(subset),
                                          "learned (calibrated thresholds)": learned}, truth_voxels)
    report = {"studies": len(stacks), "steps": len(steps), "positives": int(targets.sum()), "thresholds": thresholds,
              "box_thresholds": box_thresholds, "replayed_dice_on_training_walks": replayed,
              "seconds": time.time() - started}
    walk = {"presence_thresholds": thresholds, "presence_thresholds_box": box_thresholds, "patience": 1,
            "calibration": {k: v for k, v in report.items() if k != "seconds"}}
    if args.records:
        np.savez_compressed(args.records, features=features, probabilities=probabilities,
                            steps=json.dumps([asdict(s) for s in steps]), truth=json.dumps(
                                {f"{k[0]}:{k[1]}": v for k, v in truth_voxels.items()}))
    if args.add_on:
        save_walk_head(args.out, head.state_dict(), walk, args.adapter)
    else:
        payload = read_adapter(args.adapter)
        model.decoder.adapter.presence = head
        config = payload["config"]
        if not config.presence_head:
            from dataclasses import replace

            config = replace(config, presence_head=True)
        metadata = {**payload["metadata"], "walk": walk}
        save_adapter(args.out, model.adapter.state_dict(), config, payload["backbone"],
                     decoder_state=payload["decoder"], metadata=metadata, half=True)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
