"""The worker's Arrow memory pool (CREDIT_RISK_ARROW_MEMORY_POOL)."""

from collections.abc import Iterator

import pyarrow as pa
import pytest

from service import wiring
from service.wiring import use_arrow_memory_pool


@pytest.fixture(autouse=True)
def restore_pool() -> Iterator[None]:
    before = pa.default_memory_pool()
    yield
    pa.set_memory_pool(before)


@pytest.mark.parametrize("name", ["system", "mimalloc"])
def test_the_named_pool_allocates_from_then_on(name: str) -> None:
    use_arrow_memory_pool(name)
    assert pa.default_memory_pool().backend_name == name
    values = pa.array(range(1_000), type=pa.int64())  # allocated from it
    assert pa.default_memory_pool().bytes_allocated() >= values.nbytes


def test_a_pool_this_build_lacks_keeps_the_current_one_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    use_arrow_memory_pool("system")

    def lacking() -> pa.MemoryPool:
        raise NotImplementedError("jemalloc support is not built")  # as pyarrow says it

    monkeypatch.setitem(wiring.ARROW_POOLS, "jemalloc", lacking)
    use_arrow_memory_pool("jemalloc")
    assert pa.default_memory_pool().backend_name == "system"
    assert "not in this pyarrow build; keeping system" in caplog.text
