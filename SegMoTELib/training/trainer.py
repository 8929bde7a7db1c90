"""`segmote train`: the adapter training loop (CPU, one GPU, or several GPUs under torchrun).

Each step draws a batch of targets and one prompt kind per target (jittered box with optional
correction clicks, a click with correction rounds drawn from the model's own error, prompt-free
PPT for foreground/background targets, or a propagation-walk step on neighbouring slices of 3D
studies; see `interactive`), decodes with the frozen backbone's cached embeddings and optimises
20·focal + Dice + IoU-MSE + λ·balance on the chosen expert mask. Randomness is seeded per step, so
a run resumed from a checkpoint continues exactly as an uninterrupted one.

Several GPUs (torchrun): the step's batch is drawn globally and each rank decodes its share; a
step runs several forwards (one per prompt kind, plus the no-grad correction rounds) before one
optimizer step, which DistributedDataParallel's one-forward-one-backward bookkeeping does not
allow, so the ranks sum their gradients explicitly (one all-reduce of one flat buffer per step).
Each sample weighs 1 / global batch, so W ranks with batch B take the step one process takes on
the combined batch of W·B (the router noise and the load-balance term are per rank, as in
Switch/GShard MoE training).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..backbones import load_backbone
from ..device import select_device
from ..errors import DataError
from ..modeling import SegMoTEModel
from ..modeling.mote import MixtureOfTokenExperts
from . import simulated_user_gpu
from .bank import KINDS, EmbeddingBank
from .config import TrainConfig
from .datasets import PairDataset
from .interactive import PromptSimulator
from .losses import presence_loss, segmentation_loss
from .walks import WalkStack


NEW_MODULES = ("stroke_encoder.", "presence.")  # adapter modules an `init_adapter` file may lack


class DecoderStep(nn.Module):
    """The trainable forward of one prompt group."""

    def __init__(self, model: SegMoTEModel):
        super().__init__()
        self.model = model

    def forward(self, embeddings, early, points, boxes, mask_input, prompt_free: bool, strokes=None):
        model = self.model
        batch = embeddings.shape[0]
        if prompt_free:
            return model.decode(embeddings, early, None, model.dense_no_prompt(batch))
        sparse, dense = model.encode_prompts(points=points, boxes=boxes, masks=mask_input, strokes=strokes)
        sparse, dense = sparse.to(embeddings.dtype), dense.to(embeddings.dtype)
        if not model.uses_experts:
            logits, iou = model.decode_base(embeddings, sparse, dense, multimask=False, tuned=True)
            return BaseOutput(logits, iou)
        return model.decode(embeddings, early, sparse, dense)


class BaseOutput:
    """SAM's own decoder output in the shape of `DecoderOutput` (no routing, no balance term)."""

    def __init__(self, masks, iou):
        self.masks, self.iou = masks, iou

    def balance_loss(self):
        return None


def sum_gradients_across_ranks(parameters: list[nn.Parameter], world: int) -> None:
    """Sum every parameter's gradient over the ranks (missing gradients count as zero)."""
    if world == 1:
        return
    import torch.distributed as dist

    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    offset = 0
    for parameter in parameters:
        count = parameter.numel()
        parameter.grad = flat[offset:offset + count].view_as(parameter).clone()
        offset += count


def _distributed() -> tuple[int, int]:
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ and int(os.environ["WORLD_SIZE"]) > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class Trainer:
    def __init__(self, config: TrainConfig, log=print):
        self.config = config
        self.log = log
        self.rank, self.world = _distributed()
        if self.world > 1 and torch.cuda.is_available():
            local = int(os.environ.get("LOCAL_RANK", self.rank))
            torch.cuda.set_device(local)
            self.device = torch.device("cuda", local)
        else:
            self.device = select_device(config.device)
        precision = config.precision
        if precision == "auto":
            # bf16 decoder training measured worse on an H100 (training-batch Dice far below the
            # fp32 evaluation of the same weights); the decoder is small, so fp32 costs little.
            precision = "fp32"
        self.autocast_dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
        self.out_dir = Path(config.out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(config.seed)
        self.model = SegMoTEModel(load_backbone(config.backbone, config.checkpoint), config.adapter_config)
        self.inherited_metadata: dict = {}
        if config.init_adapter:
            self._load_initial_adapter(config.init_adapter)
        self.model = self.model.to(self.device)
        self.step_module = DecoderStep(self.model)
        if self.world > 1:
            self._broadcast_parameters()
        self.optimizer = torch.optim.AdamW(self.model.trainable_parameters(), lr=config.lr,
                                           weight_decay=config.weight_decay)
        self.scaler = torch.amp.GradScaler(enabled=self.autocast_dtype == torch.float16)
        self.step = 0
        self.bank: EmbeddingBank | None = None  # the setter also sets self.prompts

    def _load_initial_adapter(self, path) -> None:
        """Start from an adapter file's weights (fine-tuning); modules it lacks (NEW_MODULES: a stroke
        encoder, whose zero-initialised projection then changes no mask at the start; a presence head)
        keep their fresh initialisation."""
        from ..modeling.adapter_io import read_adapter

        payload = read_adapter(path, expected_backbone=self.model.backbone.name)
        state = {k: v.float() if v.is_floating_point() else v for k, v in payload["adapter"].items()}
        missing, unexpected = self.model.adapter.load_state_dict(state, strict=False)
        if unexpected or any(not name.startswith(NEW_MODULES) for name in missing):
            raise DataError(f"init_adapter: {path} does not fit this adapter configuration "
                            f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
        if payload.get("decoder") is not None and self.config.adapter_config.training_mode != "adapter":
            self.model.decoder.sam.load_state_dict({k: v.float() for k, v in payload["decoder"].items()})
        # what the starting adapter's evaluation decided (boxes through the adapter, the walk prompt) holds for
        # the fine-tuned one until its own evaluation says otherwise
        self.inherited_metadata = {k: v for k, v in payload.get("metadata", {}).items()
                                   if k in ("use_for_boxes", "boxes_reason", "propagation")}
        self.log(f"fine-tuning from {path}" + (f" (new: {sorted({n.split('.')[0] for n in missing})})" if missing else ""))

    def _broadcast_parameters(self) -> None:
        """Every rank starts from rank 0's initial adapter (seeded alike, but make it certain)."""
        import torch.distributed as dist

        with torch.no_grad():
            for parameter in self.model.trainable_parameters():
                dist.broadcast(parameter.data, 0)

    @property
    def bank(self) -> EmbeddingBank | None:
        return self._bank

    @bank.setter
    def bank(self, bank: EmbeddingBank | None) -> None:
        self._bank = bank
        self.prompts = PromptSimulator(self) if bank is not None else None

    # --- data -----------------------------------------------------------------------------
    def prepare(self) -> None:
        config = self.config
        dataset = PairDataset(config.data, split="train", val_fraction=config.val_fraction, seed=config.seed)
        walks = [WalkStack.load(path) for folder in config.walk_data for path in sorted(Path(folder).glob("*.npz"))]
        if len(dataset) == 0 and not walks:
            raise DataError(f"data: no training targets found in {config.data} {config.walk_data}")
        storage = torch.float32  # the embeddings the predictor gives at inference: fp32
        if config.bank_dtype == "fp16" or (config.bank_dtype == "auto" and self.device.type == "cuda"):
            storage = torch.float16  # halves the bank (6 MB a view); decoding casts back to fp32
        start = time.time()
        self.bank = EmbeddingBank.build(dataset, self.model.backbone, self.device, storage,
                                        max_images=config.max_images, views=config.augment_views, walks=walks,
                                        walk_max_gap=config.walk_max_gap, score_temperature=config.score_temperature,
                                        seed=config.seed, walk_end_weight=config.walk_end_weight)
        if self.rank == 0:
            counts = {kind: len(pool) for kind, pool in self.bank.pools.items()}
            self.log(f"embedded {self.bank.embeddings.shape[0]} views ({len(self.bank)} targets: {counts}) "
                     f"in {time.time() - start:.1f} s on {self.device}")

    # --- checkpoints ----------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / "checkpoint.pt"

    def save_checkpoint(self) -> None:
        if self.rank != 0:
            return
        state = {"step": self.step, "trainable": {n: p.detach().cpu() for n, p in self.model.named_parameters()
                                                  if p.requires_grad},
                 "optimizer": self.optimizer.state_dict(), "config": self.config.to_dict()}
        handle, temporary = tempfile.mkstemp(prefix=".checkpoint.", dir=self.out_dir)
        os.close(handle)
        torch.save(state, temporary)
        os.replace(temporary, self.checkpoint_path)

    def resume(self) -> bool:
        if not self.checkpoint_path.is_file():
            return False
        state = torch.load(str(self.checkpoint_path), map_location=self.device, weights_only=True)
        parameters = dict(self.model.named_parameters())
        with torch.no_grad():
            for name, value in state["trainable"].items():
                parameters[name].copy_(value.to(self.device))
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.log(f"resumed from {self.checkpoint_path} at step {self.step}")
        return True

    # --- one step -------------------------------------------------------------------------
    def _learning_rate(self) -> float:
        config = self.config
        if self.step < config.warmup_steps:
            return config.lr * (self.step + 1) / config.warmup_steps
        progress = (self.step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
        return config.lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    def draw_batch(self) -> list[tuple[str, int]]:
        """The step's global batch, (kind, target) per slot: batch_size × world slots drawn from the
        seed and step alone, so every rank draws the same list and takes its own share of it."""
        config, bank = self.config, self.bank
        rng = np.random.default_rng([config.seed, self.step])
        mix = {k: float(config.prompt_mix.get(k, 0.0)) for k in KINDS}
        if not self.model.uses_experts:
            mix["auto"] = 0.0  # SAM's decoder alone has no prompt-free tokens
        kinds = [k for k in KINDS if mix[k] > 0 and bank.pools[k]]
        if not kinds:
            raise DataError(f"data: no training targets for the prompt kinds {sorted(k for k in mix if mix[k] > 0)}")
        weights = np.array([mix[k] for k in kinds])
        slots = rng.choice(len(kinds), size=config.batch_size * self.world, p=weights / weights.sum())
        batch: list[tuple[str, int] | None] = [None] * len(slots)
        for number, kind in enumerate(kinds):
            positions = np.flatnonzero(slots == number)
            if positions.size:
                pool = bank.pools[kind]
                chosen = rng.choice(len(pool), size=positions.size, p=bank.pool_weights[kind])
                for position, index in zip(positions, chosen):
                    batch[position] = (kind, pool[index])
        return batch

    def _group_loss(self, kind: str, indices: list[int], rng: np.random.Generator, generator: torch.Generator):
        prompt = self.prompts.group(kind, indices, rng, generator)
        with self._autocast():
            output = self.step_module(prompt.embeddings, prompt.early, prompt.points, prompt.boxes,
                                      prompt.mask_input, prompt.prompt_free, prompt.strokes)
            logits = output.masks.float()
            total, parts = segmentation_loss(logits, prompt.targets, output.iou.float(), output.balance_loss(),
                                             self.config.loss_weights)
            if kind == "walk" and self.config.presence_weight > 0 and getattr(output, "presence", None) is not None:
                presence = presence_loss(output.presence.float(), logits.detach(), prompt.targets)
                total = total + self.config.presence_weight * presence
                parts["presence"] = presence.detach()
        with torch.no_grad():
            hard = (logits > 0).float()
            inter = (hard * prompt.targets).sum((1, 2, 3))
            union = hard.sum((1, 2, 3)) + prompt.targets.sum((1, 2, 3))
            dice = torch.where(union > 0, 2 * inter / union.clamp(min=1), torch.ones_like(union)).mean()
        parts["dice_score"] = dice
        return total, parts

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                              enabled=self.autocast_dtype is not None)

    def _set_train_mode(self) -> None:
        self.model.train()
        if not self.config.router_noise:
            for module in self.model.modules():
                if isinstance(module, MixtureOfTokenExperts):
                    module.eval()

    def train_step(self) -> dict:
        config = self.config
        batch = self.draw_batch()
        mine = batch[self.rank * config.batch_size:(self.rank + 1) * config.batch_size]
        rng = np.random.default_rng([config.seed, self.step, self.rank, 1])
        torch.manual_seed(config.seed * 1_000_003 + self.step * 101 + self.rank)
        generator = torch.Generator(device=self.device).manual_seed(
            (config.seed * 1_000_003 + self.step * 7919 + self.rank * 104_729) % 2**63)
        for group in self.optimizer.param_groups:
            group["lr"] = self._learning_rate()
        self._set_train_mode()
        self.optimizer.zero_grad(set_to_none=True)
        logs: dict[str, float] = {"loss": 0.0}
        groups: dict[str, list[int]] = {}
        for kind, index in mine:
            groups.setdefault(kind, []).append(index)
        for kind in KINDS:
            indices = groups.get(kind)
            if not indices:
                continue
            total, parts = self._group_loss(kind, indices, rng, generator)
            # each sample weighs 1 / (global batch): summing the ranks' gradients gives the mean
            share = len(indices) / len(batch)
            self.scaler.scale(total * share).backward()
            logs["loss"] += float(total.detach()) * len(indices) / len(mine)
            logs[f"loss_{kind}"] = float(total.detach())
            logs[f"dice_{kind}"] = float(parts["dice_score"])
            # loss terms as "<term>_loss_<kind>": "dice_<kind>" is the batch's Dice score, not the Dice loss
            logs.update({f"{name}_loss_{kind}": float(value) for name, value in parts.items() if name != "dice_score"})
        sum_gradients_across_ranks(self.model.trainable_parameters(), self.world)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.step += 1
        logs["lr"] = self.optimizer.param_groups[0]["lr"]
        return logs

    @torch.no_grad()
    def tight_box_loss(self, count: int = 8) -> float:
        """Loss on the first `count` 2D targets with untouched tight boxes (no noise): a fixed yardstick."""
        self.model.eval()
        indices = self.bank.pools["box"][:count]
        targets = [self.bank.targets[i] for i in indices]
        rows = torch.as_tensor([t.image_index for t in targets], device=self.device)
        masks = self.bank.masks[torch.as_tensor([t.mask_index for t in targets], device=self.device)]
        boxes, _ = simulated_user_gpu.tight_boxes(masks)
        with self._autocast():
            output = self.step_module(self.bank.embeddings[rows].float(), self.bank.early[rows].float(), None, boxes,
                                      None, False)
            total, _ = segmentation_loss(output.masks.float(), self.prompts.low_res_targets(masks), output.iou.float(),
                                         output.balance_loss(), self.config.loss_weights)
        return float(total)

    # --- the loop -------------------------------------------------------------------------
    def run(self, resume: bool = True, max_steps: int | None = None) -> dict:
        """Train to `config.steps` (or stop after `max_steps` more, as an interrupted run would)."""
        if self.bank is None:
            self.prepare()
        if resume:
            self.resume()
        log_path = self.out_dir / "metrics.jsonl"
        start, first_step = time.time(), self.step
        with log_path.open("a") as log_file:
            stop = self.config.steps if max_steps is None else min(self.config.steps, self.step + max_steps)
            while self.step < stop:
                if self.config.time_budget_s and time.time() - start > self.config.time_budget_s:
                    self.log(f"time budget of {self.config.time_budget_s:.0f} s reached at step {self.step}")
                    self.save_checkpoint()
                    break
                logs = self.train_step()
                if self.rank == 0:
                    log_file.write(json.dumps({"step": self.step, **logs}) + "\n")
                    if self.step % self.config.log_every == 0 or self.step == self.config.steps:
                        log_file.flush()
                        self.log(f"step {self.step}/{self.config.steps} loss {logs['loss']:.4f} " + " ".join(
                            f"{k} {v:.3f}" for k, v in logs.items() if k.startswith("dice_")))
                if self.step % self.config.checkpoint_every == 0 or self.step == stop:
                    self.save_checkpoint()
        elapsed = time.time() - start
        steps = self.step - first_step
        stopped_early = self.step < self.config.steps and max_steps is None
        summary = {"steps": self.step, "planned_steps": self.config.steps, "stopped_early": stopped_early,
                   "seconds": elapsed,
                   "samples_per_second": steps * self.config.batch_size * self.world / max(elapsed, 1e-9),
                   "device": torch.cuda.get_device_name(self.device) if self.device.type == "cuda" else str(self.device),
                   "world_size": self.world}
        if self.rank == 0 and (self.step == self.config.steps or stopped_early):
            self.model.save_adapter(self.out_dir / "adapter.pt", metadata={**self.inherited_metadata,
                                                                            "train_config": self.config.to_dict(),
                                                                            "summary": summary})
            plot_metrics(log_path, self.out_dir / "metrics.png")
        return summary


def plot_metrics(log_path: Path, png_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    if not rows:
        return
    figure, (loss_axis, dice_axis) = plt.subplots(1, 2, figsize=(11, 4))
    steps = [r["step"] for r in rows]
    loss_axis.plot(steps, [r["loss"] for r in rows], lw=0.6)
    loss_axis.set(title="training loss", xlabel="step", yscale="log")
    for kind in ("box", "click", "auto", "scribble", "lasso"):
        pairs = [(r["step"], r[f"dice_{kind}"]) for r in rows if f"dice_{kind}" in r]
        if pairs:
            xs, ys = zip(*pairs)
            window = max(1, len(ys) // 50)
            smooth = np.convolve(ys, np.ones(window) / window, mode="valid")
            dice_axis.plot(xs[window - 1:], smooth, label=kind)
    dice_axis.set(title="training Dice (batch, smoothed)", xlabel="step", ylim=(0, 1))
    if dice_axis.get_legend_handles_labels()[0]:
        dice_axis.legend()
    figure.tight_layout()
    figure.savefig(png_path, dpi=100)
    plt.close(figure)
