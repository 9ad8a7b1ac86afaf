"""Side-by-side benchmarks of the launcher against raw Docker and the tools people use
instead. Run ``python -m benchmarks.fanout`` (see benchmarks/README.md)."""
