"""Backend choice: argument > TQFA_BACKEND > probe; every refusal carries its reason."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest
import torch

import tqfa
from tqfa import dispatch


def qkv(requires_grad=False, dtype=torch.float32):
    tensors = [torch.randn(1, 2, 3, 8, dtype=dtype) for _ in range(3)]
    return [t.requires_grad_(requires_grad) for t in tensors]


def test_auto_on_cpu_is_chunked(monkeypatch):
    monkeypatch.delenv("TQFA_BACKEND", raising=False)
    assert tqfa.resolve_backend(*qkv()) == "chunked"


def test_argument_beats_environment(monkeypatch):
    monkeypatch.setenv("TQFA_BACKEND", "triton")
    assert tqfa.resolve_backend(*qkv(), backend="chunked") == "chunked"


@pytest.mark.parametrize("value", ["CHUNKED", " chunked ", "Chunked"])
def test_environment_is_case_insensitive(monkeypatch, value):
    monkeypatch.setenv("TQFA_BACKEND", value)
    assert tqfa.resolve_backend(*qkv()) == "chunked"


@pytest.mark.parametrize("value", ["", "auto", "AUTO"])
def test_empty_or_auto_environment_means_auto(monkeypatch, value):
    monkeypatch.setenv("TQFA_BACKEND", value)
    assert tqfa.resolve_backend(*qkv()) == "chunked"


def test_environment_is_read_at_call_time(monkeypatch):
    monkeypatch.setenv("TQFA_BACKEND", "nonsense")
    with pytest.raises(ValueError, match=r"TQFA_BACKEND='nonsense' is not a tqfa backend.*'chunked'"):
        tqfa.attention(*qkv())
    monkeypatch.setenv("TQFA_BACKEND", "chunked")
    tqfa.attention(*qkv())


def test_forced_triton_on_cpu_without_interpreter_says_why():
    # A fresh process: this one may run with TRITON_INTERPRET=1 (tox -e cpu), read at import.
    code = (
        "import torch, tqfa\n"
        "q = torch.randn(1, 2, 3, 8)\n"
        "print(tqfa.available_backends(q, q, q)['triton'])\n"
        "try:\n"
        "    tqfa.attention(q, q, q, backend='triton')\n"
        "except tqfa.BackendUnavailableError as error:\n"
        "    print(type(error).__name__, error)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "TQFA_BACKEND")}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    reason, error = done.stdout.strip().splitlines()
    assert reason.startswith("triton: ") and "cpu" in reason
    assert error == f"BackendUnavailableError {reason}"


def test_availability_lists_every_backend():
    table = tqfa.available_backends(*qkv())
    assert set(table) == set(dispatch.BACKEND_NAMES) and table["chunked"] is None


def test_available_backends_rejects_a_bad_name():
    with pytest.raises(ValueError, match="valid names"):
        tqfa.available_backends(*qkv(), backend="flash")


def test_grad_refusal_is_not_implemented_when_forced():
    problem = tqfa.problem.build_problem(*qkv(requires_grad=True))
    reason = dispatch.refusal(dispatch.backends()["triton"], problem)
    assert reason is not None
    with pytest.raises(NotImplementedError, match="triton: "):
        tqfa.attention(*qkv(requires_grad=True), backend="triton")


def test_grad_refusal_also_applies_to_masks():
    q, k, v = qkv()
    mask = torch.zeros(3, 3, requires_grad=True)
    problem = tqfa.problem.build_problem(q, k, v, mask)
    assert problem.requires_grad
    with torch.no_grad():
        assert not tqfa.problem.build_problem(q, k, v, mask).requires_grad


def test_auto_logs_a_skipped_backend_once(caplog, monkeypatch):
    # Pretend the tensors are on a GPU-like device so auto considers triton, which refuses.
    monkeypatch.setattr(dispatch, "_logged_reasons", set())
    problem = tqfa.problem.build_problem(*qkv(requires_grad=True))
    monkeypatch.setattr(type(problem), "device", property(lambda self: torch.device("cuda")))
    with caplog.at_level(logging.INFO, logger="tqfa"):
        for _ in range(3):
            assert dispatch.choose(problem).name == "chunked"
    skipped = [r for r in caplog.records if "skipping triton" in r.getMessage()]
    assert len(skipped) == 1
