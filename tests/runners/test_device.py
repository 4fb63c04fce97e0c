"""Device selection logic (no GPU on CI machines; the real GPU path is checked on a lent GPU)."""

import pytest

from runners.device import DeviceUnavailableError, cuda_device_count, select_device


def test_cpu_requested_is_cpu_even_with_a_gpu() -> None:
    assert select_device("cpu", "onnxruntime", True, 1).device == "cpu"


def test_auto_uses_cuda_when_engine_and_gpu_allow() -> None:
    choice = select_device("auto", "onnxruntime", True, 2)
    assert choice.device == "cuda"
    assert "2 CUDA GPU" in choice.reason


@pytest.mark.parametrize(
    ("supports", "gpus", "why"),
    [(False, 1, "build has no CUDA support"), (True, 0, "no CUDA GPU found")],
)
def test_auto_falls_back_to_cpu_and_says_why(supports: bool, gpus: int, why: str) -> None:
    choice = select_device("auto", "xgboost", supports, gpus)
    assert choice.device == "cpu"
    assert why in choice.reason


@pytest.mark.parametrize(("supports", "gpus"), [(False, 1), (True, 0), (False, 0)])
def test_cuda_requested_but_absent_is_a_clear_error(supports: bool, gpus: int) -> None:
    with pytest.raises(DeviceUnavailableError, match="device=cuda requested for onnxruntime"):
        select_device("cuda", "onnxruntime", supports, gpus)


def test_cuda_device_count_never_raises() -> None:
    assert cuda_device_count() >= 0
