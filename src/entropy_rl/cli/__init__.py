"""``entropy-rl <command>``: every pipeline step runs by hand too (Snakemake rules call these).

Each subcommand is declared beside its handler (``@command(name, help, arg(...), ...)``): the
training commands in ``cli/runs.py``, the ones that read runs in ``cli/study.py``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from entropy_rl.cli import runs as _runs  # noqa: F401  (registers theory, tabular, sft, train)
from entropy_rl.cli import study as _study  # noqa: F401  (registers evaluate, analyze, report, ...)
from entropy_rl.cli.common import COMMANDS

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="entropy-rl",
        description="Study, teach and reproduce entropy collapse in RL for reasoning LMs.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for spec in COMMANDS:
        description = spec.description() if callable(spec.description) else spec.description
        sub = commands.add_parser(spec.name, help=spec.help, description=description)
        for argument in spec.arguments:
            if argument[0] == "exclusive":
                group = sub.add_mutually_exclusive_group()
                for flags, options in argument[1]:
                    group.add_argument(*flags, **options)
            else:
                sub.add_argument(*argument[0], **argument[1])
        sub.set_defaults(run=spec.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (ValueError, OSError) as err:
        # bad config or input, a missing file, an unwritable folder or a full disk: one clear line
        print(f"entropy-rl {args.command}: error: {err}", file=sys.stderr)
        return 2
