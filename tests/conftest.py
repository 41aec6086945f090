"""Shared test setup: offline, headless, deterministic."""

import os

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import settings  # noqa: E402

# Property tests draw the same examples on every machine and every run: CI never turns red on a
# newly drawn example that a developer's run did not see.
settings.register_profile("adamlinf", derandomize=True, deadline=None)
settings.load_profile("adamlinf")


@pytest.fixture(autouse=True)
def _seed_everything():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module of tiny models: intra-op threads only add start-up cost and
    spin-waits there, and far more when the CPU is shared. Use with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiny_spec(tmp_path_factory):
    """A builder of tiny GPT run specs on the pydoc corpus (prepared once):
    ``tiny_spec(optimizer="adam", lr=1e-2, **train)``, 3 steps unless ``max_iters`` says otherwise."""
    from adamlinf import launch
    from adamlinf.data import text

    root = str(tmp_path_factory.mktemp("pydoc"))
    text.prepare_pydoc(root=root)

    def make(optimizer="adam", lr=1e-2, **train):
        train = {"max_iters": 3, "eval_interval": 0, "progress": False, "checkpoint_minutes": 0, **train}
        model = dict(n_layer=1, n_head=2, n_embd=8, block_size=8, batch_size=2, eval_iters=1)
        spec = launch.lm_spec(dataset="pydoc", **model, optimizer=optimizer, lr=lr, **train)
        spec["data"]["root"] = root
        return spec

    return make
