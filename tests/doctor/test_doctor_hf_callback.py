"""The doctor inside a Hugging Face ``Trainer``: a tiny BERT from scratch on the reviews data."""

from __future__ import annotations

import pytest
import torch
from traingym.doctor.hf_callback import DoctorCallback
from traingym.envs.tasks.reviews_data import PAD_ID, load_reviews
from traingym.envs.tasks.reviews_model import build_review_bert
from traingym.protocol.moves import LR_FACTOR
from traingym.protocol.trajectory_format import read_trajectories


class _Reviews(torch.utils.data.Dataset):
    def __init__(self, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> None:
        self.ids, self.mask, self.labels = ids, mask, labels

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "attention_mask": self.mask[i], "labels": self.labels[i]}


def test_trainer_callback_changes_the_lr_when_the_advisor_says_so_and_logs(tmp_path) -> None:
    from transformers import Trainer, TrainingArguments

    data = load_reviews()
    model = build_review_bert(data.vocab_size, n_layers=1, hidden=32, heads=2, max_len=data.max_len,
                              generator=torch.Generator().manual_seed(0))
    train = _Reviews(data.input_ids[:256], data.attention_mask[:256], data.labels[:256])
    val = (data.input_ids[256:384], data.labels[256:384])
    callback = DoctorCallback(val, every=4, policy="advisor_greedy", advisor="doctor_testkit:LowerLRAdvisor",
                              log_path=str(tmp_path / "decisions.jsonl"),
                              forward=lambda m, x: m(input_ids=x, attention_mask=(x != PAD_ID).long()).logits)
    args = TrainingArguments(output_dir=str(tmp_path / "out"), max_steps=8, per_device_train_batch_size=32,
                             learning_rate=1e-3, lr_scheduler_type="constant", report_to=[], save_strategy="no",
                             logging_strategy="no", use_cpu=True, disable_tqdm=True, seed=0)
    trainer = Trainer(model=model, args=args, train_dataset=train, callbacks=[callback])
    trainer.train()
    doctor = callback.doctor
    assert doctor is not None and doctor.steps == 8
    assert [layer.name for layer in doctor.layers] == ["bert.encoder.layer.0.ffn"]
    # Three decisions (attach, step 4, step 8), each halving the LR: optimizer and schedule follow.
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 / LR_FACTOR**3)
    assert trainer.lr_scheduler.base_lrs[0] == pytest.approx(1e-3 / LR_FACTOR**3)
    records = read_trajectories(tmp_path / "decisions.jsonl")
    assert [r["applied_move"] for r in records] == [[-1, 0, 0, 0]] * 3
    assert records[0]["diagnosis"]["text"] == "loss is spiking: lower the learning rate"
    assert records[0]["outcome"]["val_accuracy"] is not None
    assert all(h._forward_hooks == {} for h in [model])  # the loss hook is gone after training
