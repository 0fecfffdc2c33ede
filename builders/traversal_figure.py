"""Latent traversal figure (the paper's Figure 5) for any registered generator.

    python builders/traversal_figure.py --generator phantom --out traversal_phantom.png

Same options as ``synthoct traversal``; the logic is in
``synthoct_bench.generators.traversal``.
"""

from __future__ import annotations

import sys

from synthoct_bench.cli import main

if __name__ == "__main__":
    sys.exit(main(["traversal", *sys.argv[1:]]))
