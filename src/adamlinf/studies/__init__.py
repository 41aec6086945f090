"""The paper's studies (its sweeps, claims, verdicts and costs): one module per book section.

The library never imports a study; notebooks hold story, calls and figures.

- ``verdicts``: holds / fails / inconclusive (Welch's t-test on seeds, error bands, slope intervals)
- ``equivariance``: Theorem 2.2, equivariance gaps under rotations and permutations
- ``rates``: Theorem 3.2, bound grids and rate fits; the ℓ∞-versus-ℓ2 instances of 3.2 and 3.5
- ``adaptivity``: Theorem 3.5 (RMSProp) and its lemmas, Theorem 3.11 (blockwise Adam) partitions
- ``estimator``: Theorem 4.1, the error of the Cauchy (1,1)-norm estimator against the probe count
- ``quadratic``: Table 1 (Section 4.1), spectra × rotations × noise × β₁ with per-spectrum verdicts
- ``sweeps``: the tuning protocol of Sections 4.2 and 4.3 (lr grids extended until the optimum is interior)
- ``lm``: Section 4.2 (GPT-2), Figure 1's tuned runs, Figure 3's shared-lr view
- ``vision``: Section 4.3 (ResNet18), Table 3's tuned runs, Figure 4
- ``hessian_tables``: Tables 2 and 4, Hessian norms at final checkpoints with error bands
- ``diagnostic``: the "Measure your own model" chapter (``adamlinf.diagnose`` on the book's models)
- ``costs``: paper-scale GPU-hours per figure and table, measured or from an assumed MFU (labelled)
- ``review``: the "Questions from the review" chapter
- ``glance``: the "Results at a glance" page, every claim's verdict at each scale
"""
