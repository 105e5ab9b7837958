"""The training doctor: TrainGym's neuron logs, advisor and agents on your own training run.

``from traingym.doctor import TrainingDoctor``; see :mod:`traingym.doctor.doctor`. Names are imported on first use,
so the terminal decider (:mod:`traingym.doctor.terminal`) loads without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {"TrainingDoctor": "doctor", "DoctorMode": "doctor", "DefaultDecision": "doctor",
            "find_hidden_layers": "layers", "ACCEPTED_POLICIES": "policy", "DoctorCallback": "hf_callback",
            "TerminalDecider": "terminal"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'traingym.doctor' has no attribute {name!r}")
    return getattr(importlib.import_module(f"traingym.doctor.{_EXPORTS[name]}"), name)
