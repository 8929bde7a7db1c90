"""Scribble and lasso training: the simulated strokes (batched, on the training device) and the
scribble/lasso groups of a real bank, fine-tuned from the shipped adapter with a new stroke encoder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import shared_path

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def _two_blobs() -> torch.Tensor:
    masks = torch.zeros((3, 64, 64), dtype=torch.bool)
    masks[0, 10:30, 5:25] = True
    masks[0, 40:60, 40:60] = True          # a second part, far from the first
    masks[1, 20:24, 5:60] = True           # long and thin
    masks[2, 30:34, 30:34] = True          # small
    return masks


def test_region_scribbles_stay_inside_one_part_of_their_region():
    from SegMoTELib.training.simulated_strokes_gpu import region_scribbles

    masks = _two_blobs()
    generator = torch.Generator().manual_seed(0)
    for _ in range(5):
        strokes, valid = region_scribbles(masks, generator, vertices=6)
        assert strokes.shape == (3, 6, 2) and valid.all()
        xs, ys = strokes[..., 0].long(), strokes[..., 1].long()
        rows = torch.arange(3)[:, None].expand(-1, 6)
        assert masks[rows, ys, xs].all()
        in_first = (ys[0] < 32).all() or (ys[0] >= 32).all()
        assert in_first, "a stroke joined the two separate parts"
        # along the long structure: the vertices are ordered along its axis
        assert (strokes[1, 1:, 0] >= strokes[1, :-1, 0]).all() or (strokes[1, 1:, 0] <= strokes[1, :-1, 0]).all()


def _ring(size: int = 100) -> np.ndarray:
    ys, xs = np.mgrid[:size, :size]
    radius = np.hypot(ys - size / 2, xs - size / 2)
    return (radius > 20) & (radius < 27)


def test_strokes_follow_a_ring_instead_of_crossing_it():
    """A myocardium-like ring: the evaluation's stroke runs along it, inside it; a training stroke
    joins its vertices along the ring, never across the cavity."""
    from SegMoTELib.training.simulated_strokes import centre_line
    from SegMoTELib.training.simulated_strokes_gpu import region_scribbles

    ring = _ring()
    line = centre_line(ring)
    assert len(line) >= 5 and ring[line[:, 1].astype(int), line[:, 0].astype(int)].all()
    strokes, _ = region_scribbles(torch.from_numpy(np.stack([ring] * 8)), torch.Generator().manual_seed(3), 6)
    midpoints = (strokes[:, 1:] + strokes[:, :-1]) / 2
    distance = (midpoints - 50).norm(dim=-1)
    assert (distance > 0.5 * 20).all(), "a stroke segment crossed the ring's cavity"


def test_contour_scribbles_follow_the_inside_of_the_edge():
    from SegMoTELib.training.simulated_strokes_gpu import contour_scribbles

    masks = torch.zeros((1, 64, 64), dtype=torch.bool)
    masks[0, 10:50, 10:50] = True
    strokes, valid = contour_scribbles(masks, torch.Generator().manual_seed(1), vertices=8)
    x, y = strokes[0, :, 0], strokes[0, :, 1]
    distance_to_edge = torch.minimum(torch.minimum(x - 10, 49 - x), torch.minimum(y - 10, 49 - y))
    assert valid.all() and (distance_to_edge >= 1).all() and (distance_to_edge <= 3).all()


def test_perturbed_lassos_go_around_the_whole_region():
    from SegMoTELib.modeling.stroke_raster import fill_polygons
    from SegMoTELib.training.simulated_strokes_gpu import perturbed_lassos

    masks = _two_blobs()
    loops, valid = perturbed_lassos(masks, torch.Generator().manual_seed(2), 24, (0.05, 0.4), 0.08)
    assert loops.shape == (3, 24, 2) and valid.all()
    inside = fill_polygons(loops, 64, 64)
    covered = (inside & masks).sum(dim=(1, 2)).float() / masks.sum(dim=(1, 2))
    assert (covered >= 0.97).all(), covered
    assert ((inside & ~masks).sum(dim=(1, 2)) > 0).all()  # a margin around it, as a user's loop has


def test_stroke_groups_of_a_real_bank_start_from_the_shipped_adapters_masks(tmp_path):
    """Fine-tuning from v2 adds a stroke encoder whose projection starts at zero: at step 0 the
    model's masks for a stroke prompt are exactly v2's; the groups have the documented shapes."""
    from SegMoTELib.modeling import SegMoTEModel
    from SegMoTELib.resources import resources_dir
    from SegMoTELib.training.config import TrainConfig
    from SegMoTELib.training.trainer import Trainer

    shipped = resources_dir() / "adapters" / "segmote_litemedsam_v2.pt"
    config = TrainConfig(data=[str(shared_path("train_pool", "ham10000_skin_lesion"))], out_dir=str(tmp_path / "run"),
                         steps=1, batch_size=2, max_images=1, device="cpu", init_adapter=str(shipped),
                         adapter={"num_experts": 4, "active_experts": 1, "expert_rank": 64, "ppt_queries": 2,
                                  "training_mode": "adapter+decoder", "stroke_encoder": True},
                         prompt_mix={"scribble": 1.0, "lasso": 1.0}, max_stroke_rounds=1, router_noise=False)
    trainer = Trainer(config, log=lambda *_: None)
    trainer.prepare()
    rng, generator = np.random.default_rng(0), torch.Generator().manual_seed(0)
    scribble = trainer.prompts.group("scribble", trainer.bank.pools["scribble"][:1] * 2, rng, generator)
    assert scribble.strokes.shape == (2, 4, 256, 256) and scribble.strokes.sum() > 0
    # a first scribble (3 points); or a click or a box, then one correcting scribble
    assert scribble.points[0].shape[1] in (3, 4)
    lasso = trainer.prompts.group("lasso", trainer.bank.pools["lasso"][:1] * 2, rng, generator)
    assert lasso.strokes[:, 2:].sum() > 0  # a loop (positive or negative) is drawn

    reference = SegMoTEModel.from_adapter(trainer.model.backbone, shipped).eval()
    trainer.model.eval()
    with torch.no_grad():
        ours = trainer.step_module(scribble.embeddings, scribble.early, scribble.points, scribble.boxes,
                                   scribble.mask_input, False, scribble.strokes)
        sparse, dense = reference.encode_prompts(points=scribble.points, boxes=scribble.boxes, masks=scribble.mask_input)
        theirs = reference.decode(scribble.embeddings, scribble.early, sparse, dense)
    torch.testing.assert_close(ours.masks, theirs.masks, rtol=0, atol=1e-5)
    logs = trainer.train_step()
    assert np.isfinite(logs["loss"]) and {"dice_scribble", "dice_lasso"} & set(logs)
    projection = trainer.model.adapter.stroke_encoder.projection.weight
    assert projection.abs().sum() > 0, "the stroke encoder did not learn from the step"

    # the adapter file keeps the stroke encoder, and the predictor feeds it the strokes' maps
    from SegMoTELib.predictor import SegMoTEPredictor
    from SegMoTELib.slice_prompt import SlicePrompt

    path = trainer.model.save_adapter(tmp_path / "adapter.pt")
    predictor = SegMoTEPredictor(adapter=path, device="cpu", model=None, runtime="torch")  # its modules watched
    assert predictor.model.reads_stroke_maps
    seen = []
    encode = predictor.model.encode_prompts
    predictor.model.encode_prompts = lambda **kw: seen.append(kw.get("strokes")) or encode(**kw)
    image = (np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)
    predictor.set_image(image)
    lasso = predictor.predict(SlicePrompt.build(lassos=[[[10, 10], [50, 10], [50, 50], [10, 50]]]))
    # the lasso's decode (the first; a second one may follow inside it, by the same decoder)
    assert lasso.decoder == "segmote" and seen[0] is not None and seen[0].shape == (1, 4, 256, 256)
    predictor.predict(points=[[30, 30]])
    assert seen[-1] is None  # a click never passes through the stroke encoder


def test_the_v3_config_fine_tunes_the_shipped_adapter_and_keeps_every_prompt_kind():
    """The GPU run's config: valid, starts from the shipped v2 adapter, adds the stroke encoder and
    the walk's presence head, and keeps box, click, prompt-free and walk groups beside the scribble
    and lasso ones."""
    from conftest import REPO

    from SegMoTELib.training.config import TrainConfig

    config = TrainConfig.from_file(REPO / "configs" / "segmote_litemedsam_v3.json")
    assert (REPO / config.init_adapter).is_file()
    assert config.adapter_config.stroke_encoder and config.adapter_config.training_mode == "adapter+decoder"
    assert config.adapter_config.presence_head and config.presence_weight > 0
    assert set(config.prompt_mix) == {"box", "click", "auto", "walk", "scribble", "lasso"}
    assert min(config.prompt_mix.values()) > 0 and abs(sum(config.prompt_mix.values()) - 1.0) < 1e-9
