"""`segmote train`: the adapter training loop (CPU, one GPU, or several GPUs under torchrun).

Each step draws a batch of targets and one prompt kind per target (jittered box, central click
with optional refinement clicks fed the previous logits, or prompt-free PPT for
foreground/background targets), decodes with the frozen backbone's cached embeddings and
optimises 20·focal + Dice + IoU-MSE + λ·balance on the chosen expert mask. Randomness is seeded
per step, so a run resumed from a checkpoint continues exactly as an uninterrupted one.
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
import torch.nn.functional as F
from torch import nn

from ..backbones import load_backbone
from ..device import select_device
from ..errors import DataError
from ..modeling import SegMoTEModel
from . import prompts
from .bank import EmbeddingBank
from .config import TrainConfig
from .datasets import PairDataset
from .losses import segmentation_loss


class DecoderStep(nn.Module):
    """The trainable forward of one prompt group, as a module so DistributedDataParallel can wrap it."""

    def __init__(self, model: SegMoTEModel):
        super().__init__()
        self.model = model

    def forward(self, embeddings, early, points, boxes, mask_input, prompt_free: bool):
        model = self.model
        batch = embeddings.shape[0]
        if prompt_free:
            return model.decode(embeddings, early, None, model.dense_no_prompt(batch))
        sparse, dense = model.encode_prompts(points=points, boxes=boxes, masks=mask_input)
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
        self.model = SegMoTEModel(load_backbone(config.backbone, config.checkpoint), config.adapter_config).to(self.device)
        self.step_module = DecoderStep(self.model)
        self.forward = self.step_module
        if self.world > 1:
            self.forward = nn.parallel.DistributedDataParallel(self.step_module, find_unused_parameters=True)
        self.optimizer = torch.optim.AdamW(self.model.trainable_parameters(), lr=config.lr,
                                           weight_decay=config.weight_decay)
        self.scaler = torch.amp.GradScaler(enabled=self.autocast_dtype == torch.float16)
        self.step = 0
        self.bank: EmbeddingBank | None = None

    # --- data -----------------------------------------------------------------------------
    def prepare(self) -> None:
        config = self.config
        dataset = PairDataset(config.data, split="train", val_fraction=config.val_fraction, seed=config.seed)
        if len(dataset) == 0:
            raise DataError(f"data: no training targets found in {config.data}")
        storage = torch.float32  # the embeddings the predictor gives at inference: fp32
        start = time.time()
        self.bank = EmbeddingBank.build(dataset, self.model.backbone, self.device, storage,
                                        max_images=config.max_images, shard=(self.rank, self.world))
        if self.rank == 0:
            self.log(f"embedded {self.bank.embeddings.shape[0]} images ({len(self.bank)} targets) per rank "
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

    def _choose_kinds(self, rng: np.random.Generator, chosen: list[int]) -> dict[str, list[int]]:
        mix = dict(self.config.prompt_mix)
        if not self.model.uses_experts:
            mix["auto"] = 0.0  # SAM's decoder alone has no prompt-free tokens
        groups: dict[str, list[int]] = {"box": [], "click": [], "auto": []}
        for index in chosen:
            kinds = [k for k in ("box", "click", "auto") if mix.get(k, 0) > 0]
            if not self.bank.targets[index].prompt_free:
                kinds = [k for k in kinds if k != "auto"] or ["click"]
            weights = np.array([mix[k] for k in kinds], dtype=float)
            groups[kinds[rng.choice(len(kinds), p=weights / weights.sum())]].append(index)
        return groups

    def _masks(self, indices: list[int]) -> torch.Tensor:
        masks = torch.from_numpy(np.stack([self.bank.targets[i].mask for i in indices])).to(self.device)
        masks = masks[:, None].float()
        size = 4 * self.model.backbone.prompt_encoder.image_embedding_size[0]  # low-res logits side
        if masks.shape[-1] != size:
            masks = (F.interpolate(masks, size=(size, size), mode="area") > 0.5).float()
        return masks

    def _group_loss(self, kind: str, indices: list[int], rng: np.random.Generator):
        bank, device = self.bank, self.device
        rows = torch.as_tensor([bank.targets[i].image_index for i in indices], device=device)
        embeddings, early = bank.embeddings[rows], bank.early[rows]
        target_masks = self._masks(indices)
        points = boxes = mask_input = None
        if kind == "box":
            boxes = torch.tensor([prompts.jittered_box(bank.targets[i].mask, rng, self.config.box_jitter)
                                  for i in indices], dtype=torch.float32, device=device)
        elif kind == "click":
            clicks = [[(*prompts.first_click(bank.targets[i].mask, rng), 1)] for i in indices]
            rounds = 0
            if rng.random() < self.config.refinement_probability:
                rounds = int(rng.integers(1, self.config.max_refinement_clicks + 1))
            for _ in range(rounds):
                points = self._point_tensors(clicks)
                with torch.no_grad(), self._autocast():
                    output = self.step_module(embeddings, early, points, None, mask_input, False)
                mask_input = output.masks.float()
                predicted = (F.interpolate(mask_input, size=bank.targets[indices[0]].mask.shape, mode="bilinear") > 0)
                predicted = predicted[:, 0].cpu().numpy()
                for row, index in enumerate(indices):
                    click = prompts.refinement_click(bank.targets[index].mask, predicted[row], rng)
                    clicks[row].append(click if click is not None else clicks[row][-1])
            points = self._point_tensors(clicks)
        with self._autocast():
            output = self.forward(embeddings, early, points, boxes, mask_input, kind == "auto")
            logits = output.masks.float()
            total, parts = segmentation_loss(logits, target_masks, output.iou.float(), output.balance_loss(),
                                             self.config.loss_weights)
        with torch.no_grad():
            hard = (logits > 0).float()
            inter = (hard * target_masks).sum((1, 2, 3))
            dice = (2 * inter / (hard.sum((1, 2, 3)) + target_masks.sum((1, 2, 3))).clamp(min=1)).mean()
        parts["dice_score"] = dice
        return total, parts

    def _point_tensors(self, clicks):
        coords = torch.tensor([[c[:2] for c in row] for row in clicks], dtype=torch.float32, device=self.device)
        labels = torch.tensor([[c[2] for c in row] for row in clicks], dtype=torch.int64, device=self.device)
        return coords, labels

    def _autocast(self):
        return torch.autocast(self.device.type, dtype=self.autocast_dtype or torch.float32,
                              enabled=self.autocast_dtype is not None)

    def train_step(self) -> dict:
        config = self.config
        rng = np.random.default_rng([config.seed, self.step, self.rank])
        torch.manual_seed(config.seed * 1_000_003 + self.step * 101 + self.rank)
        chosen = rng.choice(len(self.bank), size=config.batch_size, replace=len(self.bank) < config.batch_size).tolist()
        for group in self.optimizer.param_groups:
            group["lr"] = self._learning_rate()
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        logs: dict[str, float] = {"loss": 0.0}
        for kind, indices in self._choose_kinds(rng, chosen).items():
            if not indices:
                continue
            total, parts = self._group_loss(kind, indices, rng)
            share = len(indices) / len(chosen)
            self.scaler.scale(total * share).backward()
            logs["loss"] += float(total.detach()) * share
            logs[f"loss_{kind}"] = float(total.detach())
            logs[f"dice_{kind}"] = float(parts["dice_score"])
            # loss terms as "<term>_loss_<kind>": "dice_<kind>" is the batch's Dice score, not the Dice loss
            logs.update({f"{name}_loss_{kind}": float(value) for name, value in parts.items() if name != "dice_score"})
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.step += 1
        logs["lr"] = self.optimizer.param_groups[0]["lr"]
        return logs

    @torch.no_grad()
    def tight_box_loss(self, count: int = 8) -> float:
        """Loss on the first `count` targets with untouched tight boxes (no noise): a fixed yardstick."""
        self.model.eval()
        indices = list(range(min(count, len(self.bank))))
        rows = torch.as_tensor([self.bank.targets[i].image_index for i in indices], device=self.device)
        boxes = torch.tensor([prompts.tight_box(self.bank.targets[i].mask) for i in indices], device=self.device)
        with self._autocast():
            output = self.step_module(self.bank.embeddings[rows], self.bank.early[rows], None, boxes, None, False)
            total, _ = segmentation_loss(output.masks.float(), self._masks(indices), output.iou.float(),
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
            self.model.save_adapter(self.out_dir / "adapter.pt", metadata={"train_config": self.config.to_dict(),
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
    for kind in ("box", "click", "auto"):
        pairs = [(r["step"], r[f"dice_{kind}"]) for r in rows if f"dice_{kind}" in r]
        if pairs:
            xs, ys = zip(*pairs)
            window = max(1, len(ys) // 50)
            smooth = np.convolve(ys, np.ones(window) / window, mode="valid")
            dice_axis.plot(xs[window - 1:], smooth, label=kind)
    dice_axis.set(title="training Dice (batch, smoothed)", xlabel="step", ylim=(0, 1))
    dice_axis.legend()
    figure.tight_layout()
    figure.savefig(png_path, dpi=100)
    plt.close(figure)
