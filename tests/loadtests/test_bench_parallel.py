"""The parallel benchmark's arithmetic and table (running it needs Docker: make bench-parallel)."""

from loadtests.bench.parallel import DelayRun, format_table, percentile


def test_percentile_is_nearest_rank() -> None:
    values = [5.0, 1.0, 3.0, 2.0, 4.0]
    assert percentile(values, 50) == 3.0
    assert percentile(values, 99) == 5.0
    assert percentile(values, 0) == 1.0
    assert percentile([7.0], 99) == 7.0


def test_the_table_sets_the_request_beside_the_slowest_member_and_the_sum() -> None:
    run = DelayRun(
        "iris-forest +50 ms",
        requests=[56.0, 58.0, 57.0],
        members=[
            {"iris": 1.0, "iris-forest": 52.0, "iris-bayes": 2.0},
            {"iris": 2.0, "iris-forest": 53.0, "iris-bayes": 1.0},
            {"iris": 1.5, "iris-forest": 51.0, "iris-bayes": 1.5},
        ],
    )
    table = format_table([run]).splitlines()
    assert table[0] == (
        "| delay (DELAY_MS) | request p50 | request p99 | slowest member p50 | "
        "sum of members p50 | iris p50 | iris-forest p50 | iris-bayes p50 |"
    )
    assert table[2] == "| iris-forest +50 ms | 57.0 | 58.0 | 52.0 | 55.0 | 1.5 | 52.0 | 1.5 |"
