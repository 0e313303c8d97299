"""Probe of a torch device -> Target: vendor, architecture and the limits tuning needs. Cached."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Target:
    vendor: str  # "nvidia", "amd" or "cpu"
    arch: str  # "sm90", "gfx942", "cpu": what tuning selects on
    name: str  # the device's own name, for messages
    multiprocessors: int  # SMs on NVIDIA, CUs on AMD, cores on a CPU
    shared_memory: int  # bytes a block may use (opt-in maximum); 0 on a CPU
    warp_size: int


def target_from_properties(
    *,
    name: str,
    is_hip: bool,
    capability: tuple[int, int] | None = None,
    gcn_arch: str | None = None,
    multiprocessors: int = 0,
    shared_memory: int = 0,
    warp_size: int | None = None,
) -> Target:
    """The pure half of the probe, so that device descriptions we do not own can be tested.

    On ROCm torch reports a CUDA-style capability that says nothing about the chip, so the arch
    comes from gcnArchName ("gfx942:sramecc+:xnack-" -> "gfx942") and never from the capability.
    """
    if is_hip:
        arch = (gcn_arch or "gfx").split(":")[0]
        # CDNA (gfx9xx) runs wave64; RDNA (gfx10xx and later) runs wave32.
        default_warp = 64 if arch.startswith("gfx9") else 32
        return Target("amd", arch, name, multiprocessors, shared_memory, warp_size or default_warp)
    major, minor = capability or (0, 0)
    return Target("nvidia", f"sm{major}{minor}", name, multiprocessors, shared_memory, warp_size or 32)


@functools.cache
def _probe_gpu(index: int) -> Target:
    props = torch.cuda.get_device_properties(index)
    is_hip = torch.version.hip is not None
    return target_from_properties(
        name=props.name,
        is_hip=is_hip,
        capability=None if is_hip else (props.major, props.minor),
        gcn_arch=getattr(props, "gcnArchName", None) if is_hip else None,
        multiprocessors=props.multi_processor_count,
        shared_memory=getattr(props, "shared_memory_per_block_optin", 0),
        warp_size=getattr(props, "warp_size", None),
    )


def probe(device: torch.device) -> Target:
    """Describe `device`; GPU probes are cached per device index."""
    if device.type == "cuda":
        return _probe_gpu(device.index if device.index is not None else torch.cuda.current_device())
    return Target(device.type, device.type, device.type, torch.get_num_threads(), 0, 1)
