"""The models file's parser and the canary's applicant shares, in process."""

import numpy as np
import pytest

from service.canary import applicant_shares, canary_rows, challenger_answers, share_limit
from service.models_file import ModelsFileError, ModelsSpec, parse_models


def test_a_full_file_with_comments() -> None:
    text = (
        "# promoted on Monday\n"
        "champion credit_risk_onnx:a   # the course model\n"
        "\n"
        "challenger credit_risk_onnx:b\n"
        "mode canary\n"
        "canary_fraction 0.05\n"
    )
    assert parse_models(text) == ModelsSpec(
        "credit_risk_onnx:a", "credit_risk_onnx:b", "canary", 0.05
    )
    assert parse_models("champion x:1\n") == ModelsSpec("x:1", None, "shadow", 0.0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("challenger x:1\n", "models: no `champion TAG` line"),
        ("champion x:1\nmode sideways\n", "models:2: mode must be shadow or canary"),
        ("champion x:1\ncanary_fraction 1.5\n", "models:2: canary_fraction must be a number"),
        ("champion x:1\ncanary_fraction half\n", "models:2: canary_fraction must be a number"),
        ("champion x:1\ncanary_fraction nan\n", "models:2: canary_fraction must be a number"),
        ("champion x:1 y:2\n", "models:1: champion needs exactly one value"),
        ("champion x:1\nchampion y:2\n", "models:2: champion is set twice (first on line 1)"),
        ("champion x:1\nchallenge y:2\n", "models:2: unknown setting 'challenge'"),
    ],
)
def test_an_unusable_file_is_refused_naming_the_line(text: str, message: str) -> None:
    with pytest.raises(ModelsFileError) as refused:
        parse_models(text, "models")
    assert str(refused.value).startswith(message)


def test_shares_are_stable_uniform_and_grow_with_the_fraction() -> None:
    rows = np.random.default_rng(7).normal(size=(20_000, 20)).astype(np.float32)
    shares = applicant_shares(rows)
    assert np.array_equal(shares, applicant_shares(rows.copy()))  # the same applicant, again
    assert np.array_equal(shares[::-1], applicant_shares(rows[::-1]))  # not by position
    assert shares.min() >= 0.0 and shares.max() < 1.0
    for fraction in (0.01, 0.05, 0.3):
        assert abs(canary_rows(rows, fraction).mean() - fraction) < 0.01
    # Raising the fraction keeps every applicant the challenger answered.
    assert np.all(canary_rows(rows, 0.3)[canary_rows(rows, 0.05)])
    assert not canary_rows(rows, 0.0).any() and canary_rows(rows, 1.0).all()
    zero, negative_zero = np.zeros((1, 3), np.float32), np.full((1, 3), -0.0, np.float32)
    assert applicant_shares(zero) == applicant_shares(negative_zero)


def test_shares_are_uniform_over_applicants_that_differ_by_one_step() -> None:
    """Real applicants are grids of whole numbers and one-hot groups, whose neighbours differ
    in a few bits: their shares must be as even as random rows'."""
    ages, incomes, amounts = np.meshgrid(np.arange(18, 78), np.arange(0, 300, 3), (500, 1000))
    rows = np.zeros((ages.size, 29), dtype=np.float32)
    rows[:, 0], rows[:, 1], rows[:, 2] = ages.ravel(), incomes.ravel(), amounts.ravel()
    rows[:, 3] = 36.0
    rows[np.arange(len(rows)), 10 + np.arange(len(rows)) % 5] = 1.0  # a one-hot group
    for fraction in (0.01, 0.05, 0.3, 0.5):
        assert abs(canary_rows(rows, fraction).mean() - fraction) < 0.01
    top_bits = (applicant_shares(rows) * 256).astype(np.int64)
    assert np.bincount(top_bits, minlength=256).max() < 2 * len(rows) / 256


def test_a_single_applicant_gets_the_share_of_its_row_in_a_batch() -> None:
    """The one-applicant path (no array arithmetic) and the batch path agree on every row,
    -0.0 included (the same applicant as 0.0)."""
    rows = np.random.default_rng(11).uniform(0, 5, size=(3_000, 29)).astype(np.float32)
    rows[::7, 3] = 0.0
    rows[::5, 0] = -0.0
    rows[::3, 10:20] = np.float32(1.0)  # one-hot-like columns: many 0x80 bytes off the high ones
    for fraction in (0.05, 0.3, 0.9):
        expected = canary_rows(rows, fraction)
        assert expected.any() and not expected.all()
        limit = share_limit(fraction)
        single = [challenger_answers(rows[i : i + 1], limit) for i in range(len(rows))]
        assert single == expected.tolist()
    zero, negative_zero = np.zeros((1, 29), np.float32), np.full((1, 29), -0.0, np.float32)
    shares = applicant_shares(zero)[0]
    # Fractions just below, at and just above a share: the integer limit is exact at the edge.
    for fraction in (np.nextafter(shares, 0.0), shares, np.nextafter(shares, 1.0)):
        limit = share_limit(fraction)
        assert challenger_answers(negative_zero, limit) == challenger_answers(zero, limit)
        assert challenger_answers(zero, limit) == (shares < fraction)
    assert not challenger_answers(zero, share_limit(0.0))
    assert challenger_answers(zero, share_limit(1.0))
