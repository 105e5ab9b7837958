"""Task families. Each maps a family name (as used in :class:`TrainingEnvConfig.task`) to its class."""

from traingym.envs.tasks.base import Instance, Split, TaskData, TaskFamily
from traingym.envs.tasks.digits import DigitsCNN, DigitsMLP
from traingym.envs.tasks.mnist import MNISTCNN
from traingym.envs.tasks.pathologies import DigitsPatchPathologies, DigitsPathologies
from traingym.envs.tasks.reviews import ReviewsBERT, ReviewsShortcut
from traingym.envs.tasks.tabular import TabularMLP

TASK_FAMILIES: dict[str, type[TaskFamily]] = {
    cls.name: cls for cls in (DigitsMLP, DigitsCNN, MNISTCNN, TabularMLP, ReviewsBERT, ReviewsShortcut,
                              DigitsPathologies, DigitsPatchPathologies)
}

__all__ = ["TASK_FAMILIES", "Instance", "Split", "TaskData", "TaskFamily", "DigitsMLP", "DigitsCNN", "MNISTCNN",
           "TabularMLP", "ReviewsBERT", "ReviewsShortcut", "DigitsPathologies", "DigitsPatchPathologies"]
