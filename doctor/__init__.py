"""The training doctor: TrainGym's neuron logs, advisor and agents on your own training run.

``from traingym.doctor import TrainingDoctor``; see :mod:`traingym.doctor.doctor`.
"""

from traingym.doctor.doctor import DefaultDecision, DoctorMode, TrainingDoctor
from traingym.doctor.layers import find_hidden_layers
from traingym.doctor.policy import ACCEPTED_POLICIES

__all__ = ["ACCEPTED_POLICIES", "DefaultDecision", "DoctorMode", "TrainingDoctor", "find_hidden_layers"]
