"""Benchmarks: ``python -m bench NAME [--quick]``.  Figures are printed and recorded in bench/README.md."""
