"""A worker caps NumPy's BLAS threads at its engine threads (service/wiring.limit_blas_threads):
OpenBLAS would otherwise spin a thread per core after each matrix product, on cores the other
workers need."""

from threadpoolctl import threadpool_info

from service.wiring import limit_blas_threads


def _blas_threads() -> set[int]:
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


def test_the_cap_holds_while_referenced_and_can_be_lifted() -> None:
    before = _blas_threads()
    assert before, "NumPy without a BLAS threadpool: nothing to cap"
    cap = limit_blas_threads(1)
    try:
        assert _blas_threads() == {1}
    finally:
        cap.restore_original_limits()
    assert _blas_threads() == before
