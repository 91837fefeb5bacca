"""GPUs for the process runner: which NVIDIA device nodes enter the sandbox, and what CUDA is told.

``--gpus N`` binds, read-write, the first ``N`` GPU nodes (``/dev/nvidia<k>``, ``k`` from the
host's ``CUDA_VISIBLE_DEVICES`` when it lists indexes, else 0..N-1) and the driver's control
nodes (``nvidiactl``, ``nvidia-uvm``, ``nvidia-uvm-tools``, ``nvidia-modeset``, ``nvidia-caps/``)
into the sandbox's otherwise empty ``/dev``, and sets ``CUDA_VISIBLE_DEVICES`` to those indexes
with ``CUDA_DEVICE_ORDER=PCI_BUS_ID``, the order in which the driver numbers its device nodes,
so CUDA opens exactly the nodes it was given. ``/sys`` is bound read-only too (the driver
library and NVML read the PCI tree there), as Docker does for every container. The nodes are
found under ``dev_root`` (``/dev``; a test passes a temporary tree of fake nodes).
"""

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from bench.errors import RunnerError

CONTROL_NODES = ("nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset", "nvidia-caps")
_GPU_NODE = re.compile(r"nvidia(\d+)")


@dataclass(frozen=True)
class GpuBinding:
    """The device nodes to bind (host path -> path in the sandbox) and the CUDA environment."""

    indexes: tuple[int, ...] = ()
    nodes: tuple[tuple[str, str], ...] = ()
    environment: dict[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        """One phrase for the run's isolation text."""
        if not self.indexes:
            return "no GPU device"
        shown = ", ".join(inside for _, inside in self.nodes)
        return (f"GPUs {','.join(map(str, self.indexes))} ({shown} bound read-write, /sys read-only, "
                f"CUDA_VISIBLE_DEVICES={self.environment['CUDA_VISIBLE_DEVICES']})")


def gpu_binding(count: int, *, dev_root: Path = Path("/dev"), visible: str | None = None) -> GpuBinding:
    """The binding for ``count`` GPUs (none for 0).

    Parameters
    ----------
    count
        GPUs asked for (the task's or ``--gpus``).
    dev_root
        Where the host's device nodes are.
    visible
        The host's ``CUDA_VISIBLE_DEVICES`` (default: from the environment); numeric entries
        choose which GPUs are given, in order.

    Raises
    ------
    RunnerError
        Fewer GPU nodes than asked for, or no control node ``nvidiactl``.
    """
    if count <= 0:
        return GpuBinding()
    present = sorted(int(m.group(1)) for entry in _entries(dev_root) if (m := _GPU_NODE.fullmatch(entry)))
    visible = os.environ.get("CUDA_VISIBLE_DEVICES") if visible is None else visible
    wanted = [int(part) for part in (visible or "").split(",") if part.strip().isdigit()]
    candidates = [index for index in wanted if index in present] if wanted else present
    if len(candidates) < count:
        raise RunnerError(
            f"--gpus {count}: {len(candidates)} NVIDIA GPU device node(s) usable under {dev_root} "
            f"({', '.join(f'nvidia{i}' for i in present) or 'none'}"
            f"{f'; CUDA_VISIBLE_DEVICES={visible}' if wanted else ''}). Ask for fewer GPUs, or run "
            "where the NVIDIA driver is loaded."
        )
    if not (dev_root / "nvidiactl").exists():
        raise RunnerError(
            f"--gpus {count}: {dev_root}/nvidiactl is missing; the NVIDIA driver is not loaded.")
    indexes = tuple(candidates[:count])
    names = [f"nvidia{index}" for index in indexes]
    names += [name for name in CONTROL_NODES if (dev_root / name).exists()]
    nodes = tuple((str(dev_root / name), f"/dev/{name}") for name in names)
    environment = {"CUDA_VISIBLE_DEVICES": ",".join(map(str, indexes)), "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    return GpuBinding(indexes=indexes, nodes=nodes, environment=environment)


def _entries(dev_root: Path) -> list[str]:
    try:
        return os.listdir(dev_root)
    except OSError:
        return []
