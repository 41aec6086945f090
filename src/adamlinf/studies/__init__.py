"""The paper's studies: one module per book section, built on the library.

A study module holds what is specific to *this paper*: the sweeps a notebook runs, the claims it
checks and their verdicts, and the cost of the paper-scale runs. It imports the library
(``adamlinf.optim``, ``adamlinf.hessian``, ...); the library never imports a study. Notebooks call
studies and the library, and hold only story, calls, figures and tables.

=====================  =================================================================================
module                 what
=====================  =================================================================================
``verdicts``           the verdict rules (holds / fails / inconclusive: Welch's t-test on seeds, error
                       bands, slope intervals) and claim tables; every page's verdicts go through it
``equivariance``       Theorem 2.2: equivariance gaps under rotations and permutations
``rates``              Theorem 3.2: bound grids and rate fits; the ℓ∞-versus-ℓ2 instances of 3.2 and 3.5
``adaptivity``         Theorem 3.5 (RMSProp) and its lemmas, Theorem 3.11 (blockwise Adam) partitions
``estimator``          Theorem 4.1: error of the Cauchy (1,1)-norm estimator against the probe count,
                       error quantiles, rate fit, band coverage
``quadratic``          Table 1 (Section 4.1): spectra × rotations × noise × β₁ sweep, learning-rate
                       grids refined and extended at the edges, the round-off-free σ = 0 metric,
                       per-spectrum verdicts, the paper-scale cost
``sweeps``             the tuning protocol of Sections 4.2 and 4.3: lr grids extended until the
                       optimum is interior, seeds at the tuned points, final metrics, sweep figures
``lm``                 Section 4.2 (GPT-2): Figure 1's tuned runs, Figure 3's shared-lr view, claims
``vision``             Section 4.3 (ResNet18): Table 3's tuned runs, Figure 4, claims
``hessian_tables``     Tables 2 and 4: Hessian norms at final checkpoints with error bands and the
                       same-checkpoint (rotated vs unrotated) comparison
``diagnostic``         the "Measure your own model" chapter: adamlinf.diagnose on the book's models,
                       least squares against its closed form, summary tables, book-check verdicts
``costs``              paper-scale GPU-hours per figure and table, measured when a GPU measurement
                       is published, else from an assumed MFU, labelled as such
``review``             the "Questions from the review" chapter: small tasks, rotated / blockwise arms, the
                       tuned protocol with a separate tuning seed, Hessian norms in a basis and along training
``glance``             the "Results at a glance" page: every claim's verdict at each scale
=====================  =================================================================================
"""
