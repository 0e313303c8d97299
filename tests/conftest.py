import os
import sys

import pytest
import torch

# The shared case list and the oracle are plain modules beside the tests.
sys.path.insert(0, os.path.dirname(__file__))


def pytest_sessionstart(session):
    """tox's GPU environments fail at once, with the reason, on a machine without that GPU."""
    if not os.environ.get("TQFA_REQUIRE_DEVICE"):
        return
    vendor = os.environ.get("TQFA_TEST_VENDOR", "nvidia")
    present = torch.cuda.is_available() and (torch.version.hip is not None) == (vendor == "amd")
    if not present:
        build = f"torch {torch.__version__} (cuda {torch.version.cuda}, hip {torch.version.hip})"
        pytest.exit(f"this environment needs an {vendor} GPU; {build} sees none", returncode=3)
