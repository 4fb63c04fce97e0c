"""CPU or CUDA, decided from configuration and what the machine really has."""

import ctypes
import logging
from dataclasses import dataclass
from typing import Literal

DeviceRequest = Literal["auto", "cpu", "cuda"]
logger = logging.getLogger(__name__)


class DeviceUnavailableError(RuntimeError):
    """CUDA was requested explicitly but this machine or engine build cannot use it."""


@dataclass(frozen=True)
class DeviceChoice:
    device: Literal["cpu", "cuda"]
    reason: str


def cuda_device_count() -> int:
    """GPUs the CUDA driver reports (0 without a driver); no framework import needed."""
    try:
        cuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return 0
    count = ctypes.c_int(0)
    if cuda.cuInit(0) != 0 or cuda.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return 0
    return count.value


def select_device(
    requested: DeviceRequest, engine: str, engine_supports_cuda: bool, gpu_count: int
) -> DeviceChoice:
    """Pure decision logic, so it is testable on machines without a GPU."""
    if requested == "cpu":
        return DeviceChoice("cpu", "device=cpu requested")
    usable = engine_supports_cuda and gpu_count > 0
    if usable:
        return DeviceChoice(
            "cuda", f"device={requested} and {gpu_count} CUDA GPU(s) usable by {engine}"
        )
    why = f"{engine} build has no CUDA support" if not engine_supports_cuda else "no CUDA GPU found"
    if requested == "cuda":
        raise DeviceUnavailableError(f"device=cuda requested for {engine}, but {why}")
    return DeviceChoice("cpu", f"device=auto and {why}")


def resolve_device(
    requested: DeviceRequest, engine: str, engine_supports_cuda: bool, tag: str
) -> DeviceChoice:
    """Decide for this machine (probing CUDA only when it may be used) and log the one line."""
    gpu_count = cuda_device_count() if requested != "cpu" else 0
    choice = select_device(requested, engine, engine_supports_cuda, gpu_count)
    log_device_choice(engine, tag, choice)
    return choice


def log_device_choice(engine: str, tag: str, choice: DeviceChoice) -> None:
    logger.warning(
        "%s runner for %s runs on %s (%s)", engine, tag, choice.device.upper(), choice.reason
    )
