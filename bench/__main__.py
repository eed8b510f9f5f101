"""Run a benchmark by name: ``python -m bench {external,indexing,scale,latency,throughput,baseline,language_id,llm-prompts,grown,claims,stores,startup,parity,hnsw-recall,load,faults} [--quick]``."""

import importlib
import sys

BENCHMARKS = ("external", "indexing", "scale", "latency", "throughput", "baseline", "language_id", "llm-prompts",
              "grown", "claims", "stores", "startup", "parity", "hnsw-recall",
              "load", "faults")

if len(sys.argv) < 2 or sys.argv[1] not in BENCHMARKS:
    sys.exit(f"usage: python -m bench {{{','.join(BENCHMARKS)}}} [--quick]")
importlib.import_module(f"bench.{sys.argv[1].replace('-', '_')}").main(sys.argv[2:])
