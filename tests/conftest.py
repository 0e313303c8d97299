import os
import sys

import pytest
import torch

# The shared case list and the oracle are plain modules beside the tests.
sys.path.insert(0, os.path.dirname(__file__))


def pytest_configure(config):
    """Under pytest-xdist, each worker takes its share of the cores: without this, N workers of
    as many threads each oversubscribe the CPU and the CPU-bound tests (float64 chunked, Inductor
    compiles) run many times slower."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


def pytest_sessionstart(session):
    """tox's GPU environments fail at once, with the reason, on a machine without that GPU."""
    if not os.environ.get("TQFA_REQUIRE_DEVICE"):
        return
    vendor = os.environ.get("TQFA_TEST_VENDOR", "nvidia")
    present = torch.cuda.is_available() and (torch.version.hip is not None) == (vendor == "amd")
    if not present:
        build = f"torch {torch.__version__} (cuda {torch.version.cuda}, hip {torch.version.hip})"
        pytest.exit(f"this environment needs an {vendor} GPU; {build} sees none", returncode=3)
