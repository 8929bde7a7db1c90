"""A short real training run: the loss falls, a checkpoint is written, resuming is exact."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import shared_path

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


@pytest.fixture(scope="module")
def small_config(tmp_path_factory):
    from SegMoTELib.training.config import TrainConfig

    data = [str(shared_path("train_pool", "ham10000_skin_lesion")), str(shared_path("train_pool", "jsrt_scr_chest_xray"))]
    return lambda out, **changes: TrainConfig(**{
        "data": data, "out_dir": str(tmp_path_factory.mktemp(out)), "steps": 4, "batch_size": 3, "max_images": 2,
        "checkpoint_every": 2, "log_every": 1, "warmup_steps": 1, "lr": 1e-3, "device": "cpu", **changes})


@pytest.fixture(scope="module")
def bank(small_config):
    from SegMoTELib.training.trainer import Trainer

    trainer = Trainer(small_config("bank"), log=lambda *_: None)
    trainer.prepare()
    return trainer.bank


def _trainer(config, bank):
    from SegMoTELib.training.trainer import Trainer

    trainer = Trainer(config, log=lambda *_: None)
    trainer.bank = bank  # the frozen encoder's embeddings are the same for every run
    return trainer


def _adapter_state(trainer):
    return {name: value.clone() for name, value in trainer.model.adapter.state_dict().items()}


def test_training_lowers_the_loss_and_writes_outputs(small_config, bank):
    config = small_config("learn", steps=12, prompt_mix={"box": 1.0}, lr=3e-3)
    trainer = _trainer(config, bank)
    before = trainer.tight_box_loss()
    summary = trainer.run(resume=False)
    after = trainer.tight_box_loss()
    print(f"tight-box loss {before:.4f} -> {after:.4f} in {summary['steps']} steps")
    assert after < before * 0.9
    out = trainer.out_dir
    assert (out / "checkpoint.pt").is_file() and (out / "adapter.pt").is_file() and (out / "metrics.png").is_file()
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == list(range(1, 13))


def test_resume_continues_exactly(small_config, bank):
    straight = _trainer(small_config("straight"), bank)
    straight.run(resume=False)

    interrupted_config = small_config("interrupted")
    first_half = _trainer(interrupted_config, bank)
    first_half.run(resume=False, max_steps=2)  # as if killed after step 2
    assert not (first_half.out_dir / "adapter.pt").exists()
    second_half = _trainer(interrupted_config, bank)
    assert second_half.resume() and second_half.step == 2
    second_half.run(resume=False)

    expected, actual = _adapter_state(straight), _adapter_state(second_half)
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name


def test_trained_adapter_loads_in_the_predictor(small_config, bank):
    from SegMoTELib.predictor import SegMoTEPredictor

    trainer = _trainer(small_config("load", steps=1), bank)
    trainer.run(resume=False)
    predictor = SegMoTEPredictor(adapter=trainer.out_dir / "adapter.pt", device="cpu", runtime="torch")
    assert predictor.uses_adapter and predictor.notice is None
