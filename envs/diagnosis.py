"""Bridge from the env's config to the advisors' :class:`~traingym.advisors.channel.DiagnosisChannel`."""

from __future__ import annotations

from traingym.advisors.channel import DiagnosisChannel
from traingym.advisors.config import DiagnosisConfig
from traingym.envs.config import TrainingEnvConfig


def make_diagnosis_channel(config: TrainingEnvConfig) -> DiagnosisChannel:
    """The channel that fills the ``"diagnosis"`` observation key (one per env: caches are per process)."""
    return DiagnosisChannel(DiagnosisConfig(
        advisor=config.advisor,
        call_policy=config.advisor_call,
        every_n=config.advisor_every_n,
        encoder=config.encoder,
        dim=config.diagnosis_dim,
        openai_base_url=config.advisor_base_url,
        openai_timeout_s=config.advisor_timeout_s,
        openai_max_retries=config.advisor_max_retries,
    ))
