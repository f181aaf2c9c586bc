"""``python -m vlreid.testing COMMAND DIR``: write a tiny model to DIR.

Commands: ``tiny-llava`` (:func:`vlreid.testing.llava.build_tiny_llava`).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path


def _tiny_llava(out_dir: Path, seed: int) -> None:
    from vlreid.testing.llava import TinyLlavaConfig, build_tiny_llava

    build_tiny_llava(out_dir, TinyLlavaConfig(seed=seed))


COMMANDS: dict[str, Callable[[Path, int], None]] = {"tiny-llava": _tiny_llava}
"""Command name -> builder writing to a folder."""


def main(argv: list[str] | None = None) -> None:
    """Parse ``COMMAND DIR [--seed N]`` and run the builder."""
    parser = argparse.ArgumentParser(prog="python -m vlreid.testing", description=__doc__)
    parser.add_argument("command", choices=sorted(COMMANDS), help="What to build.")
    parser.add_argument("out_dir", type=Path, help="Folder to write.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the random weights.")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    COMMANDS[arguments.command](arguments.out_dir, arguments.seed)


if __name__ == "__main__":
    main()
