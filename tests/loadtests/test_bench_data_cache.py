"""The data-cache benchmark's parsing and table (running it needs Docker: make bench-data-cache)."""

from loadtests.bench.data_cache import Phase, format_table, stage_seconds

METRICS = """\
# HELP mlsp_stage_duration_seconds Time spent in one stage of the work a service owns.
mlsp_stage_duration_seconds_count{stage="db_fetch"} 4.0
mlsp_stage_duration_seconds_sum{stage="db_fetch"} 0.002
mlsp_stage_duration_seconds_sum{stage="inference"} 0.0004
mlsp_http_request_duration_seconds_sum{method="POST",route="/predict"} 0.5
"""


def test_stage_seconds_are_read_from_the_metrics() -> None:
    assert stage_seconds(METRICS) == {"db_fetch": 0.002, "inference": 0.0004}


def test_the_table_gives_p50_p99_and_the_api_time_per_request_in_each_stage() -> None:
    phase = Phase(
        "tensor",
        "cold",
        latencies=[2.0, 3.0, 4.0, 5.0],
        answers={"miss": 4},
        stages={"db_fetch": 0.002, "cache_lookup": 0.0008, "inference": 0.0004},
    )
    table = format_table([phase]).splitlines()
    assert table[0] == (
        "| variant | cache | X-Cache | p50 | p99 | db_fetch (api) | cache_lookup (api) "
        "| preprocess (api) | inference (api) |"
    )
    assert table[2] == "| tensor | cold | 4 miss | 3.00 | 5.00 | 0.500 | 0.200 | 0.000 | 0.100 |"
