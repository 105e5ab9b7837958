"""Static hyperparameter optimisation baselines for TrainGym: Optuna TPE and SLLMBO's LLM-TPE over an instance's
starting hyperparameters, and the compute-matched comparison with agents and baselines.

* :mod:`traingym.hpo.study` — one study on one instance (:class:`HPOConfig`, :func:`run_study`).
* :mod:`traingym.hpo.llm_tpe` — the LLM-TPE Optuna sampler (:class:`LLMTPESampler`).
* :mod:`traingym.hpo.compare` — TPE, LLM-TPE (per advisor), keep, baselines and saved agents on held-out instances,
  compute-matched.

Command line: ``python -m traingym.hpo study ...`` and ``python -m traingym.hpo compare ...``.
"""

from traingym.hpo.compare import CompareConfig, run_comparison
from traingym.hpo.llm_tpe import LLMTPEConfig, LLMTPESampler, make_proposer
from traingym.hpo.study import HPOConfig, HPOResult, hpo_search_space, run_study

__all__ = ["CompareConfig", "HPOConfig", "HPOResult", "LLMTPEConfig", "LLMTPESampler", "hpo_search_space",
           "make_proposer", "run_comparison", "run_study"]
