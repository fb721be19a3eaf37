"""The stored dispatch runs of chapter 5 and the spreads the chapter quotes."""

from gemma4_lite.book.dispatch_runs import (
    RUNS,
    growth_spread,
    ratio_spread,
    winners,
)

TWO_RUNS = [
    {1: {"grouped": 2.0, "sorted": 1.0}, 8: {"grouped": 4.0, "sorted": 6.0}},
    {1: {"grouped": 1.0, "sorted": 3.0}, 8: {"grouped": 2.0, "sorted": 2.0}},
]


def test_ratio_spread_is_min_and_max_over_runs():
    spread = ratio_spread(TWO_RUNS)
    assert spread[1]["sorted"] == (0.5, 3.0)
    assert spread[8]["sorted"] == (1.0, 1.5)
    assert spread[1]["grouped"] == (1.0, 1.0)


def test_growth_and_winners():
    assert growth_spread(TWO_RUNS, 1, 8)["sorted"] == (2 / 3, 6.0)
    assert winners(TWO_RUNS) == {1: ["sorted", "grouped"], 8: ["grouped"] * 2}


def test_a_scheme_missing_from_a_run_is_skipped():
    runs = [
        {4: {"grouped": 1.0, "token_loop": 2.0}},
        {4: {"grouped": 1.0}},
    ]
    assert ratio_spread(runs)[4]["token_loop"] == (2.0, 2.0)


def test_stored_runs_cover_the_chapter_grid():
    schemes = {
        "token_loop",
        "expert_loop",
        "sorted",
        "grouped",
        "hf_eager",
        "hf_grouped_mm",
    }
    assert len(RUNS) >= 5
    for run in RUNS:
        assert list(run) == [1, 4, 16, 64, 512]
        for n, row in run.items():
            expected = schemes - ({"token_loop"} if n == 512 else set())
            assert set(row) == expected
            assert all(t > 0 for t in row.values())
