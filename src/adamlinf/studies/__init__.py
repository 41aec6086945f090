"""The paper's studies: one module per book section, built on the library.

A study module holds what is specific to *this paper*: the sweeps a notebook runs, the claims it
checks and their verdicts, and the cost of the paper-scale runs. It imports the library
(``adamlinf.optim``, ``adamlinf.hessian``, ...); the library never imports a study. Notebooks call
studies and the library, and hold only story, calls, figures and tables.

=====================  ===========================================================
module                 what
=====================  ===========================================================
``verdicts``           the verdict rule (holds / fails / inconclusive) and claim tables
=====================  ===========================================================
"""
