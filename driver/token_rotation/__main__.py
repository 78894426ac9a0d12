"""`python -m token_rotation`: the same as the `token-rotation` command."""

from __future__ import annotations

from token_rotation.cli import main

main()
