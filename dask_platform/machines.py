"""What a node of each machine type leaves for our pods: capacity minus what the cloud reserves, minus the share of
the cloud's own DaemonSets. Used by `dask-platform plan` (what each group offers) and by the render-time check that
every pod's requests fit the node group it selects (values.py). The figures (machine sizes, reservation formulas,
DaemonSet requests) are each cloud's, with their sources, in dask_platform/clouds/<cloud>.py; where a cloud does not
publish a figure, the one used is derived from measured clusters, and says so. This module holds the arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass

from dask_platform.clouds import cloud
from dask_platform.clouds.base import Machine
from dask_platform.quantity import BINARY

MIB = BINARY["Mi"]

__all__ = ["Allocatable", "Machine", "allocatable", "reserved_cpu_m", "reserved_memory_mib"]


def reserved_cpu_m(cloud_name: str, machine: Machine) -> int:
    """kube-reserved CPU in millicores (``Cloud.reserved_cpu_m``)."""
    return cloud(cloud_name).reserved_cpu_m(machine)


def reserved_memory_mib(cloud_name: str, machine: Machine) -> int:
    """Memory the node keeps from pods: the kernel's share of the nominal size, kube-reserved and the eviction
    threshold (``Cloud.reserved_memory_mib``)."""
    return cloud(cloud_name).reserved_memory_mib(machine)


@dataclass(frozen=True)
class Allocatable:
    """What one node of a group leaves for our pods (millicores, bytes)."""

    machine_type: str
    cpu_m: int
    memory_bytes: int

    def describe(self) -> str:
        return f"{self.machine_type}: {self.cpu_m}m CPU, {self.memory_bytes / 2**30:.2f} GiB for pods"


def allocatable(cloud_name: str, machine_type: str) -> Allocatable | None:
    """What a node of ``machine_type`` leaves for our pods after the cloud's reservations and DaemonSets, or None
    when the type is not in the cloud's table (then nothing can be checked)."""
    c = cloud(cloud_name)
    machine = c.machines.get(machine_type)
    if machine is None:
        return None
    ds_cpu, ds_mem = c.daemonsets
    if machine.gpus:
        ds_cpu, ds_mem = ds_cpu + c.gpu_daemonsets[0], ds_mem + c.gpu_daemonsets[1]
    cpu = machine.cpus * 1000 - c.reserved_cpu_m(machine) - ds_cpu
    mem = machine.memory_mib - c.reserved_memory_mib(machine) - ds_mem
    return Allocatable(machine_type, cpu, mem * MIB)
