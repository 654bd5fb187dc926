"""Few-step generation: the math of models that sample in one to a few network calls.

* :mod:`.consistency`: the consistency function's parametrisation (the boundary condition by
  construction) and Easy Consistency Tuning's noise-level pairs and loss (Geng et al. 2025);
* :mod:`.meanflow`: the MeanFlow identity for the average velocity (Geng et al. 2025);
* :mod:`.distill`: progressive distillation's two-step teacher target (Salimans & Ho 2022).

Pure functions of tensors and paths; the training modules (:mod:`ddpm.training`) and the samplers
(``sampler=consistency``, ``sampler=meanflow``) use them.
"""
