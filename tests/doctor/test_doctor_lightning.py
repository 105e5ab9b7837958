"""The doctor inside a PyTorch Lightning ``Trainer.fit`` on the CPU (the ``[lightning]`` extra)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from doctor_testkit import TinyNet, digits
from traingym.protocol.moves import LR_FACTOR
from traingym.protocol.trajectory_format import read_trajectories

lightning = pytest.importorskip("lightning.pytorch", reason="the [lightning] extra is not installed")


class DigitsModule(lightning.LightningModule):
    def __init__(self, lr: float) -> None:
        super().__init__()
        self.net, self.lr = TinyNet(), lr

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self(x), y)

    def configure_optimizers(self) -> dict:
        optimizer = torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)
        return {"optimizer": optimizer, "lr_scheduler": torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)}


def _fit(tmp_path, steps: int, accumulate: int = 1):
    from traingym.doctor.lightning_callback import DoctorCallback

    x_train, y_train, x_val, y_val, _, _ = digits()
    torch.manual_seed(0)
    module = DigitsModule(lr=0.05)
    callback = DoctorCallback((x_val, y_val), every=4, policy="advisor_greedy",
                              advisor="doctor_testkit:LowerLRAdvisor", log_path=str(tmp_path / "decisions.jsonl"))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x_train, y_train), batch_size=32)
    trainer = lightning.Trainer(max_steps=steps, accelerator="cpu", devices=1, callbacks=[callback], logger=False,
                                enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                                accumulate_grad_batches=accumulate, default_root_dir=str(tmp_path))
    trainer.fit(module, loader)
    return module, trainer, callback


def test_lightning_fit_applies_the_doctors_moves_to_the_optimizer_and_the_schedule(tmp_path) -> None:
    module, trainer, callback = _fit(tmp_path, steps=8)
    doctor = callback.doctor
    assert doctor is not None and doctor.steps == 8 and doctor._closed
    assert [layer.name for layer in doctor.layers] == ["net.conv", "net.fc"]
    # Three decisions (attach, step 4, step 8), each halving the LR: the optimizer and the schedule follow.
    optimizer = trainer.optimizers[0]
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.05 / LR_FACTOR**3)
    assert trainer.lr_scheduler_configs[0].scheduler.base_lrs[0] == pytest.approx(0.05 / LR_FACTOR**3)
    records = read_trajectories(tmp_path / "decisions.jsonl")
    assert [r["applied_move"] for r in records] == [[-1, 0, 0, 0]] * 3
    assert all(r["outcome"]["val_accuracy"] is not None for r in records[:-1])  # the last one has no next check


def test_gradient_accumulation_counts_optimizer_steps_not_batches(tmp_path) -> None:
    _, trainer, callback = _fit(tmp_path, steps=4, accumulate=2)
    assert trainer.global_step == 4
    assert callback.doctor is not None and callback.doctor.steps == 4
