"""The benchmark of the pipeline (``make bench``): see ``bench/run_bench.py`` and docs/benchmarks.md."""
