"""Benchmarks of token-rotation, run against a real PostgreSQL (never in the test suite: timings flake).

- `compare`: `token-rotation bench` / `make bench`: the reference bare UPDATE, the procedure at several batch
  sizes and worker counts, adaptive batches, and the original's two client-side ways, side by side; writes a
  markdown table, a JSON file and a PNG chart.
- `engine`: `python -m token_rotation.bench.engine` / `make bench-engine`: one CALL vs one bare UPDATE,
  alternated, median ratio (issue 2's must-show).
- `seed_speed`: `python -m token_rotation.bench.seed_speed` / `make bench-seed`: seed vs one bare INSERT.
- `driver_overhead`: the driver's overhead and memory over a bare CALL.

`common` holds what they share: the scratch table, resetting it, timing, memory sampling, medians.
"""
