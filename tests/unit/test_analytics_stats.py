"""The analytics statistics, checked against closed forms and hand-computed values."""

from __future__ import annotations

import math

import pytest

from service.analytics import stats


def test_pearson_of_a_hand_computed_example():
    # x̄ = 3, ȳ = 4; Σdxdy = 7, Σdx² = 10, Σdy² = 10 → r = 0.7.
    assert stats.pearson([1, 2, 3, 4, 5], [2, 5, 3, 4, 6]) == pytest.approx(0.7)


def test_pearson_is_exactly_plus_or_minus_one_for_lines():
    xs = [0.1 * i for i in range(50)]
    assert stats.pearson(xs, [3 * x + 1 for x in xs]) == pytest.approx(1.0)
    assert stats.pearson(xs, [-2 * x for x in xs]) == pytest.approx(-1.0)
    assert -1.0 <= stats.pearson(xs, [-2 * x for x in xs]) <= 1.0


def test_pearson_is_undefined_without_variation_or_pairs():
    assert stats.pearson([1, 1, 1], [1, 2, 3]) is None
    assert stats.pearson([1, 2, 3], [5, 5, 5]) is None
    assert stats.pearson([1], [2]) is None
    assert stats.pearson([], []) is None
    with pytest.raises(ValueError):
        stats.pearson([1, 2], [1])


def test_average_ranks_share_ties():
    assert stats.average_ranks([10, 30, 20, 30]) == [1.0, 3.5, 2.0, 3.5]
    assert stats.average_ranks([5, 5, 5]) == [2.0, 2.0, 2.0]
    assert stats.average_ranks([]) == []


def test_spearman_matches_the_textbook_formula_without_ties():
    xs = [35, 23, 47, 17, 10, 43, 9, 6, 28]
    ys = [30, 33, 45, 23, 8, 49, 12, 4, 31]
    rank_x, rank_y = stats.average_ranks(xs), stats.average_ranks(ys)
    n = len(xs)
    d2 = sum((a - b) ** 2 for a, b in zip(rank_x, rank_y, strict=True))
    assert stats.spearman(xs, ys) == pytest.approx(1 - 6 * d2 / (n * (n * n - 1)))


def test_spearman_sees_monotone_relationships_as_perfect():
    xs = [1, 2, 3, 4, 5, 6]
    assert stats.spearman(xs, [x**3 for x in xs]) == pytest.approx(1.0)
    assert stats.pearson(xs, [x**3 for x in xs]) < 1.0


@pytest.mark.parametrize(
    ("a", "b", "x"),
    [(2, 3, 0.4), (2, 3, 0.9), (1, 1, 0.25), (5, 2, 0.7), (3, 4, 0.05)],
)
def test_incomplete_beta_matches_the_binomial_sum_for_integer_parameters(a, b, x):
    # For integers, I_x(a, b) = P(Binomial(a + b − 1, x) ≥ a).
    n = a + b - 1
    expected = sum(math.comb(n, j) * x**j * (1 - x) ** (n - j) for j in range(a, n + 1))
    assert stats.regularized_incomplete_beta(a, b, x) == pytest.approx(expected, rel=1e-12)


def test_incomplete_beta_edges_and_bad_arguments():
    assert stats.regularized_incomplete_beta(2, 3, 0.0) == 0.0
    assert stats.regularized_incomplete_beta(2, 3, 1.0) == 1.0
    for args in ((0, 1, 0.5), (1, -1, 0.5), (1, 1, 1.5)):
        with pytest.raises(ValueError):
            stats.regularized_incomplete_beta(*args)


@pytest.mark.parametrize("t", [0.0, 0.3, 1.0, 2.5, 12.0])
def test_t_with_one_degree_of_freedom_is_the_cauchy_distribution(t):
    expected = 1 - 2 / math.pi * math.atan(abs(t))
    assert stats.student_t_two_sided_p(t, 1) == pytest.approx(expected, rel=1e-10, abs=1e-15)
    assert stats.student_t_two_sided_p(-t, 1) == pytest.approx(expected, rel=1e-10, abs=1e-15)


@pytest.mark.parametrize("t", [0.5, 1.0, 3.0, 10.0])
def test_t_with_two_degrees_of_freedom_has_a_closed_form(t):
    assert stats.student_t_two_sided_p(t, 2) == pytest.approx(1 - t / math.sqrt(2 + t * t))


@pytest.mark.parametrize(
    ("t", "df", "p"),
    # Critical values from the usual t tables.
    [(2.228, 10, 0.05), (2.086, 20, 0.05), (2.845, 20, 0.01), (1.984, 100, 0.05)],
)
def test_t_table_critical_values(t, df, p):
    assert stats.student_t_two_sided_p(t, df) == pytest.approx(p, abs=2e-4)


def test_t_with_many_degrees_of_freedom_approaches_the_normal():
    p = stats.student_t_two_sided_p(1.959964, 1_000_000)
    assert p == pytest.approx(0.05, abs=1e-5)
    assert stats.student_t_two_sided_p(math.inf, 5) == 0.0


def test_correlation_p_value():
    # r = 0.5, n = 3: t = tan(π/6) with 1 df, so p = 2/3 exactly.
    assert stats.correlation_p_value(0.5, 3) == pytest.approx(2 / 3)
    assert stats.correlation_p_value(0.0, 50) == pytest.approx(1.0)
    assert stats.correlation_p_value(1.0, 10) == 0.0
    assert stats.correlation_p_value(0.9, 2) is None
    assert stats.correlation_p_value(None, 10) is None


def test_correlate_reports_method_r_p_and_n():
    result = stats.correlate([1, 2, 3, 4], [1, 3, 2, 4], "spearman")
    assert result.method == "spearman" and result.n == 4
    assert result.r == pytest.approx(0.8)
    t = 0.8 * math.sqrt(2 / (1 - 0.64))
    assert result.p == pytest.approx(1 - t / math.sqrt(2 + t * t))  # 2 df closed form
    with pytest.raises(ValueError):
        stats.correlate([1, 2, 3], [1, 2, 3], "kendall")


def test_bin_means_split_x_into_equal_bins_and_average_y():
    xs = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]
    ys = [10 * x for x in xs]
    bins = stats.bin_means(xs, ys, bins=5)
    assert [(b.low, b.high) for b in bins] == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10)]
    assert [b.n for b in bins] == [2, 2, 2, 2, 3]  # the maximum falls in the last bin
    assert [b.mean_y for b in bins] == [5, 25, 45, 65, 90]
    assert bins[0].center == 1


def test_bin_means_with_empty_bins_and_constant_x():
    bins = stats.bin_means([0, 0, 10], [1, 3, 7], bins=10)
    assert bins[0].mean_y == 2 and bins[5].n == 0 and bins[5].mean_y is None
    single = stats.bin_means([4, 4], [1, 2])
    assert len(single) == 1 and single[0].mean_y == 1.5
    assert stats.bin_means([], []) == []


def test_even_sample_keeps_the_spread_and_the_limit():
    items = list(range(10_000))
    sample = stats.even_sample(items, 1000)
    assert len(sample) == 1000 and sample[0] == 0 and sample[-1] >= 9_980
    assert stats.even_sample([1, 2, 3], 1000) == [1, 2, 3]


def test_strength_words():
    assert stats.strength(0.05) == "no"
    assert stats.strength(-0.2) == "a weak"
    assert stats.strength(0.4) == "a moderate"
    assert stats.strength(-0.9) == "a strong"
