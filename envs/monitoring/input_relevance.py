"""Over-relevant input features of an image or table task: contrastive gradient x input on the validation errors.

The image / table analogue of the text families' token relevance (:mod:`traingym.envs.monitoring.token_monitor`).

## Where the relevance comes from
After each step's validation pass (not at reset: an untrained network has learned no reliance) the neuron log
explains the validation errors (:meth:`~traingym.envs.monitoring.neuron_log.NeuronLog.record_input_relevance`):
feature ``j``'s relevance on one error is ``max(0, x_j * d(logit_predicted - logit_true)/dx_j)``, the contrastive
gradient x input (Shrikumar et al. 2016): what pushed the wrong class past the right one. A shortcut shows there
because validation images carry the planted pattern decorrelated from the label
(:mod:`traingym.envs.tasks.pathologies`): a model that relies on it errs where the pattern points to another class,
and the pattern's features carry those errors. The plain gradient x input of the predicted logit (no contrast) spread
the relevance over the strokes and flagged far fewer of the planted pixels.

## Aggregation and flags
Each error's relevance is normalised to shares (summing to 1 over the features); a feature's score is its mean
share *per occurrence*: the summed shares over the errors in which the feature is non-zero, divided by that count
plus a prior of :data:`PRIOR_COUNT` occurrences (shrinkage: a feature seen in two errors cannot flag on them alone).
A shortcut pixel is present in few errors but carries a large share of each; a stroke pixel is present in most
errors with a small share; a blank pixel is never present and scores 0. Sums and counts are exponential moving sums
over steps (:data:`DECAY`, as the token monitor's). Scores are compared across the features that occur with a robust
z-score, ``(score - median) / (1.4826 * MAD)``, the MAD floored at :data:`MAD_FLOOR` of the median.

A feature is *flagged now* when its z stayed at or above :data:`ALARM_Z` on :data:`PERSISTENCE` consecutive updates,
or, once some feature of the run has been flagged, at or above ``SHORTCUT_Z`` (hysteresis, as in event detectors:
the high threshold raises the alarm, the lower one extends it to the rest of the pattern, whose pixels share the
shortcut's relevance between them). A short-lived outlier is noise: on the nearly untrained network of the first
steps, when almost every validation image is an error, stroke pixels of clean digits cross a threshold for an update
or two and fall back, while a learned shortcut's z keeps rising. The thresholds were chosen on train instances; the
rates per pathology are in ``docs/results/input_relevance.md``. The top :data:`TOP_FEATURES` flagged go to the
report's ``flagged_inputs``, highest z first. Every feature ever flagged in the run stays *sticky* (at most
:data:`STICKY_FEATURES`, newest kept), and augmentation decorrelates the sticky ones from the label
(:func:`~traingym.envs.tasks.augmentation.decorrelate_inputs`): a decorrelated shortcut stops being relevant and
would otherwise be relearned. A feature that becomes flagged emits an ``over_relevant_input`` event (``neuron_ids``
``[feature]``, values ``z``, ``share``).

## Observation block (:data:`FEATURE_SIZE` = 12 floats, the size of the token block, + two per cell)
The top :data:`TOP_FEATURES` features by z (flagged or not): ``squash(z, Z_SCALE)``
(:mod:`~traingym.envs.monitoring.neuron_features`) and mean share per occurrence, interleaved; then the number
flagged now (at most :data:`TOP_FEATURES`) / :data:`TOP_FEATURES` and the number of sticky features /
:data:`STICKY_FEATURES`. With ``cells`` (the env's ``mask_grid``: the agent chooses which cell to decorrelate),
then per cell ``squash(max z of its features, Z_SCALE)``, then per cell the share of its features among the sticky
ones (the newest :data:`STICKY_FEATURES` ever flagged): *where* the errors' relevance concentrates now, and where it
was flagged, which stays after the agent has decorrelated a shortcut and its relevance has faded (a policy without
memory would otherwise lose the cell).
"""

from __future__ import annotations

import numpy as np
import torch
from traingym.envs.monitoring.event_log import EventLog
from traingym.envs.monitoring.neuron_features import Z_SCALE, squash
from traingym.protocol.events import EventType
from traingym.protocol.report import SHORTCUT_Z

TOP_FEATURES = 5
"""Features in the observation block and the report, and the most flagged at once."""
STICKY_FEATURES = 32
"""Features ever flagged that stay masked by augmentation (newest kept)."""
DECAY = 0.8
"""Factor applied to the accumulated sums before each update (an effective window of about 5 steps)."""
MAD_FLOOR = 0.05
"""Floor of the robust spread, as a fraction of the median score."""
PRIOR_COUNT = 10.0
"""Occurrences added to each feature's count (shrinks the score of rarely seen features toward 0)."""
PERSISTENCE = 3
"""Consecutive updates a feature's z must stay at or above a threshold before it is flagged."""
ALARM_Z = 6.0
"""Robust z from which a feature flags a run with nothing flagged yet (``SHORTCUT_Z`` extends the alarm)."""
FEATURE_SIZE = 2 * TOP_FEATURES + 2
"""Length of :meth:`InputRelevanceMonitor.features` without cells."""


def feature_size(cells: int) -> int:
    """Length of :meth:`InputRelevanceMonitor.features` with ``cells`` cells: two features per cell."""
    return FEATURE_SIZE + 2 * cells


class InputRelevanceMonitor:
    """Input-feature relevance statistics of one run, updated after each validation pass (module docstring).

    ## Arguments
    * ``feature_names``: a short name per input feature (``"pixel r0c3"``, ``"feature 7"``), for the report.
    * ``events``: event log that ``over_relevant_input`` events go to (None: no events).
    * ``z_threshold``: robust z-score from which a feature is flagged.
    * ``cells``: flat feature ids per cell of the input (:func:`~traingym.envs.tasks.input_cells.input_cells`),
      each summarised in :meth:`features`; empty: no cell features.
    """

    def __init__(self, feature_names: tuple[str, ...], *, events: EventLog | None = None,
                 z_threshold: float = SHORTCUT_Z, decay: float = DECAY, cells: tuple[np.ndarray, ...] = ()
                 ) -> None:
        if not feature_names:
            raise ValueError("feature_names must name at least one input feature")
        self.feature_names = feature_names
        self.cells = cells
        self.feature_size = feature_size(len(cells))
        """Length of :meth:`features`."""
        self.events = events
        self.z_threshold = float(z_threshold)
        self.decay = float(decay)
        self.reset()

    def reset(self) -> None:
        """Forget the run: sums, flagged and sticky features."""
        self._shares = np.zeros(len(self.feature_names), dtype=np.float64)
        self._counts = np.zeros(len(self.feature_names), dtype=np.float64)
        self._z = np.zeros(len(self.feature_names), dtype=np.float64)
        self._streak = np.zeros((2, len(self.feature_names)), dtype=np.int64)
        """Consecutive updates at or above :data:`ALARM_Z` (row 0) and ``z_threshold`` (row 1)."""
        self._flagged_now: list[int] = []
        self._sticky: list[int] = []

    @property
    def flagged_ids(self) -> tuple[int, ...]:
        """The sticky flagged features (what augmentation masks first), newest last."""
        return tuple(self._sticky)

    @property
    def scores(self) -> np.ndarray:
        """Each feature's mean share per occurrence, with the prior (module docstring)."""
        return self._shares / (self._counts + PRIOR_COUNT)

    def update(self, relevance: torch.Tensor | None, step: int) -> None:
        """Add one error pass's ``(2, F)`` summed shares and occurrence counts (None: no errors, nothing changes)."""
        if relevance is None:
            return
        values = relevance.double().numpy()
        if values.shape != (2, self._shares.shape[0]):
            raise ValueError(f"relevance must have shape (2, {self._shares.shape[0]}), got {values.shape}")
        if not np.isfinite(values).all():
            return
        self._shares = self.decay * self._shares + values[0]
        self._counts = self.decay * self._counts + values[1]
        self._z = robust_z(self.scores, self._counts > 0)
        above = np.stack([self._z >= max(ALARM_Z, self.z_threshold), self._z >= self.z_threshold])
        self._streak = np.where(above, self._streak + 1, 0)
        persistent = self._streak >= PERSISTENCE
        flagged = persistent[0] | persistent[1] if self._sticky else persistent[0]
        order = np.argsort(-self._z, kind="stable")
        now = [int(j) for j in order if flagged[j]][:STICKY_FEATURES]
        previous = set(self._flagged_now)
        self._flagged_now = now
        self._sticky = ([j for j in self._sticky if j not in now] + now)[-STICKY_FEATURES:]
        if self.events is not None:
            scores = self.scores
            for j in now:
                if j not in previous:
                    self.events.emit(step, EventType.OVER_RELEVANT_INPUT, None, [j],
                                     {"z": float(self._z[j]), "share": float(scores[j])})

    def report(self) -> list[dict]:
        """The flagged features in the TrainingReport's ``flagged_inputs`` shape: ``{"feature", "z", "share"}``."""
        scores = self.scores
        return [{"feature": self.feature_names[j], "z": round(float(self._z[j]), 3),
                 "share": round(float(scores[j]), 4)} for j in self._flagged_now[:TOP_FEATURES]]

    def features(self) -> np.ndarray:
        """The ``(feature_size,)`` float32 observation block (module docstring)."""
        out = np.zeros(self.feature_size, dtype=np.float32)
        if self._counts.any():
            scores = self.scores
            for i, j in enumerate(np.argsort(-self._z, kind="stable")[:TOP_FEATURES]):
                out[2 * i: 2 * i + 2] = (squash(self._z[j], Z_SCALE), scores[j])
        out[FEATURE_SIZE - 2] = min(len(self._flagged_now), TOP_FEATURES) / TOP_FEATURES
        out[FEATURE_SIZE - 1] = len(self._sticky) / STICKY_FEATURES
        out[FEATURE_SIZE:FEATURE_SIZE + len(self.cells)] = self.cell_relevance()
        out[FEATURE_SIZE + len(self.cells):] = self.cell_flagged()
        return out

    def cell_relevance(self) -> np.ndarray:
        """``squash(max z, Z_SCALE)`` of each cell's features (zeros before any update), float32."""
        return np.array([squash(float(self._z[ids].max()), Z_SCALE) for ids in self.cells], dtype=np.float32)

    def cell_flagged(self) -> np.ndarray:
        """Each cell's share of features among the sticky ones (the newest ever flagged in the run), float32."""
        sticky = np.zeros(len(self.feature_names), dtype=bool)
        sticky[list(self._sticky)] = True
        return np.array([sticky[ids].mean() for ids in self.cells], dtype=np.float32)


def robust_z(scores: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """``(scores - median) / (1.4826 * MAD)`` over the ``seen`` features (the others get 0), the MAD floored at
    :data:`MAD_FLOOR` of the median."""
    z = np.zeros_like(scores)
    if seen.sum() < 3:
        return z
    values = scores[seen]
    median = float(np.median(values))
    mad = float(np.median(np.abs(values - median)))
    spread = 1.4826 * max(mad, MAD_FLOOR * median, 1e-12)
    z[seen] = (values - median) / spread
    return z


def feature_names(shape: tuple[int, ...]) -> tuple[str, ...]:
    """Names of a flattened input of ``shape``: ``(C, H, W)`` images get ``"pixel r{row}c{col}"`` (with a
    channel prefix when C > 1), anything else ``"feature {j}"``."""
    if len(shape) == 3:
        c, h, w = shape
        prefix = [f"c{k} " if c > 1 else "" for k in range(c)]
        return tuple(f"{prefix[k]}pixel r{r}c{q}" for k in range(c) for r in range(h) for q in range(w))
    return tuple(f"feature {j}" for j in range(int(np.prod(shape))))
