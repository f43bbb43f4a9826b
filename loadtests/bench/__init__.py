"""``make bench``: ratios measured side by side in one run (see loadtests/bench/run.sh)."""
