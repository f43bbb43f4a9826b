"""Bench scripts: each brings stacks up (or drives running ones) and measures figures side by
side in one run for a report under loadtests/reports/.

``make bench`` (run.sh, report.py, wrk.py, bare.py, inference.py, middleware_cost.py,
shed_cost.py): ratios of the serving stack. One script per other measurement: overload.py
(``make overload``), spread.py (``make spread``), rollout_locust.py (``make rollout-locust``),
parallel.py (``make bench-parallel``), data_cache.py (``make bench-data-cache``), shadow.py
(``make shadow-bench``), canary.py (``make canary-bench``), async_jobs.py and event_loop.py
(two checkouts or apis side by side, run by hand).
"""
