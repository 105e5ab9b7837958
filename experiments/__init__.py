"""The experiments that measured what ``docs/results/`` reports: scripts on top of the library, never imported by it.

- :mod:`~traingym.experiments.study`: the default agent's evidence (seeds x variants, held-out);
- :mod:`~traingym.experiments.ablate`: observation-key subsets x advisors x seeds (locally or as Ray Tune trials,
  :mod:`~traingym.experiments.ray_tune`);
- :mod:`~traingym.experiments.good_defaults`: the sweep that writes the package's tuned defaults;
- :mod:`~traingym.experiments.export_pretrained`: ship a finished run's agent as ``pretrained:<name>``;
- :mod:`~traingym.experiments.results`: writing a ``docs/results/`` page with its provenance.
"""
