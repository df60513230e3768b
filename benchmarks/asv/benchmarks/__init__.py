"""loopsafe's asv suite (``asv run`` from ``benchmarks/asv``)."""
