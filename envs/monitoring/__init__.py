"""What the env sees of a training run: the middle of a step's data flow, after the K optimizer steps and before
the report, the diagnosis and the observation.

After the training steps (:mod:`~traingym.envs.training_env`, or :mod:`traingym.envs.batched` for N envs at once)
and the validation pass, :mod:`~traingym.envs.monitoring.neuron_log` reads the gradients, weight changes and
activations; :mod:`~traingym.envs.monitoring.token_monitor` (text tasks, with
:mod:`~traingym.envs.monitoring.relevance`) and :mod:`~traingym.envs.monitoring.input_relevance` (image / table
tasks) find over-relevant inputs; :mod:`~traingym.envs.monitoring.event_detector` turns it all into typed events in
the bounded :mod:`~traingym.envs.monitoring.event_log`; :mod:`~traingym.envs.monitoring.neuron_features` makes the
``"neurons"`` observation block; :mod:`~traingym.envs.monitoring.monitor` (``TrainingMonitor``, shared with the
training doctor) assembles history, report and observation. One concept per module; import them from their modules
(this package re-exports nothing).
"""
