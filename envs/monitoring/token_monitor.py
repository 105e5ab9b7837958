"""Over-relevant tokens of a text task, found by token relevance on the errors of the diagnostic buffer.

## Where the relevance comes from
After each step's validation pass (not at reset: an untrained network has no learned reliance) the env calls
:meth:`TokenRelevanceMonitor.update` with the instance's *diagnostic* buffer
(:class:`~traingym.envs.tasks.base.Split`: reviews held out from the training part, drawn from the training
distribution, never trained on). Its errors, at most ``max_error_samples`` of them, are explained with Chefer
token relevance (:func:`~traingym.envs.monitoring.relevance.token_relevance`, eval mode, target = the predicted, wrong
class) with ``absolute=True``: the positive-part rule misses a shortcut once the model's attention saturates on
it (measurements in :mod:`traingym.envs.monitoring.relevance`).

Why not the validation buffer: the reward and the reported validation metrics come from the clean validation
buffer, where a planted shortcut token never occurs, so it could never be seen there; in-distribution held-out
data is where a model's reliance on it shows. Event-triggered: a step whose diagnostic buffer has no errors
computes nothing and leaves the statistics as they are.

## Aggregation: exponential moving sums
Each update first multiplies the accumulated :class:`~traingym.envs.monitoring.relevance.TokenRelevanceStats` by
``decay`` (default :data:`DECAY` = 0.8, an effective window of ~5 env steps), then adds the new errors. So the z-scores
describe the model as it is now (the nearly untrained model of the first steps fades out) while pooling enough
errors for stable scores (the planted token occurs in only a few errors per step).

## Flagged tokens
* *Flagged now*: the top :data:`TOP_TOKENS` tokens with z above the threshold
  (:data:`~traingym.protocol.report.SHORTCUT_Z`). They go to the report's ``flagged_tokens`` (:meth:`report`).
* *Sticky*: the last :data:`STICKY_TOKENS` tokens ever flagged in the episode, newest last
  (:attr:`flagged_ids`). Augmentation masks these first: once masking removes a shortcut's relevance it is no
  longer flagged now, but it must stay masked or the model relearns it.
* Events: each token that becomes flagged (was not flagged at the previous update) emits an
  ``over_relevant_token`` event: ``layer`` None, ``neuron_ids`` ``[token_id]``, values ``z``, ``share``,
  ``count`` (effective occurrences).

## Cadence (optional)
With a :class:`RelevanceCadence` in :attr:`TokenRelevanceMonitor.cadence` (the batched text env sets one), an
update computes only when it is due: at every step while the flagged tokens act on training (augmentation on: it
masks them) or changed at the last computation; otherwise (augmentation off, flags unchanged) the interval doubles
to every 2nd, then every 4th step. A computed update after a gap of ``g`` steps decays the statistics by
``decay ** g``, so they keep the every-step time scale. Why this rule: the flagged tokens act on the run only
through the masking (and, for an agent, through the token features of the ``neurons`` observation, stale between
computations); while masking is off and the flags are stable a recomputation changes nothing that acts on
training, and with ``decay`` 0.8 (half-life ~3 steps) a gap of at most 4 keeps 0.8**4 = 41 % of the previous
evidence in every update, so a shortcut learned while augmentation is off is flagged at most 3 steps later
than with every-step relevance (and at once when augmentation is switched on). A first version that backed off
whenever the flags were stable, augmentation on or not, delayed the masking of the planted shortcut and cost
held-out test accuracy (paired difference -0.010 +- 0.013 over 36 episodes against the single env, see
``tests/envs/batched/test_batched_text.py``). Without a cadence (the single env) every step computes, as before.

## Observation block (:data:`FEATURE_SIZE` = 12 floats, :meth:`features`)
The top :data:`TOP_TOKENS` tokens by z (flagged or not; zero padded): ``squash(z, Z_SCALE)``
(:mod:`~traingym.envs.monitoring.neuron_features`) and mean relevance share per occurrence, interleaved; then the
number flagged now / :data:`TOP_TOKENS` and the number of sticky tokens / :data:`STICKY_TOKENS`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn
from traingym.envs.monitoring.event_log import EventLog
from traingym.envs.monitoring.neuron_features import Z_SCALE, squash
from traingym.envs.monitoring.relevance import TokenRelevanceStats, token_relevance
from traingym.envs.tasks.reviews_data import PAD_ID, PROTECTED_IDS
from traingym.protocol.events import EventType
from traingym.protocol.report import SHORTCUT_Z

TOP_TOKENS = 5
"""Tokens in the observation block and the most flagged at once."""
STICKY_TOKENS = 10
"""Tokens ever flagged that stay masked by augmentation (newest kept)."""
DECAY = 0.8
"""Factor applied to the accumulated statistics before each update."""
FEATURE_SIZE = 2 * TOP_TOKENS + 2
"""Length of :meth:`TokenRelevanceMonitor.features`."""


class RelevanceCadence:
    """When token relevance is due (module doc, "Cadence"): every step while ``acting()`` (the flagged tokens act
    on training: augmentation is on); otherwise the interval doubles, up to ``max_interval`` steps, after each
    computed update that left the flagged tokens unchanged, and returns to 1 when they change."""

    def __init__(self, acting: Callable[[], bool], max_interval: int = 4) -> None:
        if max_interval < 1:
            raise ValueError(f"max_interval must be >= 1, got {max_interval}")
        self.acting = acting
        self.max_interval = max_interval
        self.reset()

    def reset(self) -> None:
        self.interval = 1
        self.since = 0
        """Steps since the last computed update."""

    def tick(self) -> bool:
        """Count one step; whether relevance is due at it."""
        self.since += 1
        return self.since >= self.interval or self.acting()

    def computed(self, changed: bool) -> None:
        """Record a computed update and whether it changed the flagged tokens."""
        self.interval = 1 if changed else min(2 * self.interval, self.max_interval)
        self.since = 0


class TokenRelevanceMonitor:
    """Token relevance statistics of one env, updated after each validation pass (see the module doc).

    ## Arguments
    * ``id_to_token``: token string of every input id (the family's vocabulary).
    * ``max_error_samples``: most diagnostic errors explained per update.
    * ``events``: event log that ``over_relevant_token`` events go to (None: no events).
    * ``decay``: factor in [0, 1] applied to the statistics before each update.
    * ``z_threshold``, ``min_count``: as in :class:`~traingym.envs.monitoring.relevance.TokenRelevanceStats`.
    """

    def __init__(self, id_to_token: Sequence[str], max_error_samples: int, *, events: EventLog | None = None,
                 decay: float = DECAY, z_threshold: float = SHORTCUT_Z, min_count: int = 5) -> None:
        if not 0.0 <= decay <= 1.0:
            raise ValueError(f"decay must be in [0, 1], got {decay}")
        if max_error_samples < 1:
            raise ValueError(f"max_error_samples must be >= 1, got {max_error_samples}")
        self.stats = TokenRelevanceStats(len(id_to_token), id_to_token, min_count=min_count,
                                         z_threshold=z_threshold, ignore_ids=PROTECTED_IDS)
        self.max_error_samples = max_error_samples
        self.events = events
        self.decay = decay
        self.cadence: RelevanceCadence | None = None
        """Set one to compute only when due (module doc, "Cadence"); None: every update computes."""
        self.reset()

    def reset(self) -> None:
        """Forget the episode: statistics, flagged and sticky tokens."""
        self.stats.reset()
        self._flagged_now: list[int] = []
        self._sticky: list[int] = []
        self.n_errors = 0
        """Diagnostic errors explained by the last update (0: nothing computed)."""
        self.computed = 0
        """Updates of this episode that ran the model (for the cadence's accounting)."""
        if self.cadence is not None:
            self.cadence.reset()

    @property
    def flagged_ids(self) -> tuple[int, ...]:
        """The sticky flagged tokens (what augmentation masks first), newest last."""
        return tuple(self._sticky)

    def update(self, model: nn.Module, x_diag: torch.Tensor, y_diag: torch.Tensor, step: int) -> int:
        """Explain the errors of ``model`` on the diagnostic buffer and update the statistics.

        ``model`` is a :class:`~traingym.envs.tasks.reviews_model.ReviewClassifier` (``input_ids -> logits``,
        the Hugging Face model in ``hf_model``). Leaves the model in eval mode (when it computes). Returns the
        errors explained (0 when the cadence skips this step).
        """
        gap = 1
        if self.cadence is not None:
            if not self.cadence.tick():
                self.n_errors = 0
                return 0
            gap = self.cadence.since
        self.computed += 1
        model.eval()
        with torch.no_grad():
            predicted = model(x_diag).argmax(-1)
        errors = (predicted != y_diag).nonzero().flatten()[: self.max_error_samples]
        self.n_errors = int(errors.numel())
        if self.n_errors == 0:
            if self.cadence is not None:
                self.cadence.computed(changed=False)
            return 0
        ids = x_diag[errors]
        mask = ids != PAD_ID
        relevance = token_relevance(model.hf_model, ids, mask.long(), target=predicted[errors], absolute=True)
        self.stats.decay(self.decay**gap)
        self.stats.update(ids, mask, relevance)
        now = self.stats.top(TOP_TOKENS)
        previous = set(self._flagged_now)
        self._flagged_now = [row.token_id for row in now]
        if self.cadence is not None:
            self.cadence.computed(changed=set(self._flagged_now) != previous)
        self._sticky = ([i for i in self._sticky if i not in self._flagged_now] + self._flagged_now)[-STICKY_TOKENS:]
        if self.events is not None:
            for row in now:
                if row.token_id not in previous:
                    self.events.emit(step, EventType.OVER_RELEVANT_TOKEN, None, [row.token_id],
                                     {"z": row.z, "share": row.share, "count": row.count})
        return self.n_errors

    def report(self, k: int = TOP_TOKENS) -> list[dict]:
        """The flagged tokens in the TrainingReport's ``flagged_tokens`` shape (``token``, ``z``, ``share``)."""
        return self.stats.report(k)

    def features(self) -> np.ndarray:
        """The ``(FEATURE_SIZE,)`` float32 observation block (module doc)."""
        out = np.zeros(FEATURE_SIZE, dtype=np.float32)
        for i, row in enumerate(self.stats.top(TOP_TOKENS, only_flagged=False)):
            out[2 * i: 2 * i + 2] = (squash(row.z, Z_SCALE), row.share)
        out[-2] = len(self._flagged_now) / TOP_TOKENS
        out[-1] = len(self._sticky) / STICKY_TOKENS
        return out
