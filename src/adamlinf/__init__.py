"""adamlinf: the library behind the reproducible edition of
"Adam Exploits l-infinity geometry of Loss Landscape via Coordinate-wise Adaptivity"
(Xie, Mohamadi, Li; ICLR 2025; arXiv 2410.08198).

One module per concept of the paper:

=============  ==============================================================  =====================
module         concept                                                          paper
=============  ==============================================================  =====================
``optim``      Adam (paper form), RMSProp, SignGD, AdaSGD, BlockwiseAdam        Algorithms 1-3
``partitions`` how the parameters split into blocks                             Definition 3.8
``rotations``  Haar, exp(theta S), permute-and-rotate, training on L o R        Def. 2.1, App. D.1
``hessian``    HVPs, (1,1)-norm (Cauchy), spectral norm, blockwise bound        Algorithm 4, Def. 3.9
``theory``     the closed-form bounds of Section 3 (as reconstructed)           Theorems 3.2-3.11
``problems``   the rotated quadratic of Section 4.1 and its batched runner      Section 4.1
``models``     GPT-2 (nanoGPT style) and ResNet18 for CIFAR-10                  Sections 4.2, 4.3
``data``       OpenWebText, CIFAR-10 and their offline stand-ins                Sections 4.2, 4.3
``train``      the one training loop (DDP, checkpoints, metrics, progress)
``results``    where results go, provenance records
``run``        papermill runner: executes the book's notebooks at a scale
=============  ==============================================================  =====================
"""

__version__ = "0.1.0"
