"""Benchmarks of token-rotation, run against a real PostgreSQL (never in the test suite: timings flake), from
a checkout only (`make bench`, `make bench-growth` ...: `PYTHONPATH=tests python -m benchmarks.X`): they are
not in the wheel, as psycopg keeps its own in tests/. They import the tool as a user would.

- `compare`: `make bench`: the reference bare UPDATE, the procedure at several batch
  sizes and worker counts, adaptive batches, and the original's two client-side ways, side by side; writes a
  markdown table, a JSON file and a PNG chart.
- `engine`: `make bench-engine`: one CALL vs one bare UPDATE,
  alternated, median ratio.
- `seed_speed`: `make bench-seed`: seed vs one bare INSERT.
- `driver_overhead`: the driver's overhead and memory over a bare CALL.

`common` holds what they share: the scratch table, resetting it, timing, memory sampling, medians.
"""
