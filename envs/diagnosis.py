"""The env's diagnosis channel: the one module of :mod:`traingym.envs` that imports :mod:`traingym.advisors`.

The env's config fields keep their names on the advisor side (:class:`~traingym.advisors.config.DiagnosisConfig`
has ``advisor``, ``advisor_call``, ``advisor_every_n``, ``encoder``, ``diagnosis_dim``); the transport fields
(``advisor_base_url``, ``advisor_timeout_s``, ``advisor_max_retries``) become the one nested
:class:`~traingym.advisors.factory.LLMOptions` object that travels unchanged down to the chat backend.
"""

from __future__ import annotations

from traingym.advisors.channel import DiagnosisChannel
from traingym.advisors.config import DiagnosisConfig
from traingym.advisors.factory import LLMOptions
from traingym.envs.config import TrainingEnvConfig


def make_diagnosis_channel(config: TrainingEnvConfig) -> DiagnosisChannel:
    """The channel that fills the ``"diagnosis"`` observation key (one per env: caches are per process)."""
    return DiagnosisChannel(DiagnosisConfig(
        advisor=config.advisor,
        advisor_call=config.advisor_call,
        advisor_every_n=config.advisor_every_n,
        encoder=config.encoder,
        diagnosis_dim=config.diagnosis_dim,
        llm=LLMOptions(base_url=config.advisor_base_url, timeout_s=config.advisor_timeout_s,
                       max_retries=config.advisor_max_retries),
    ))
