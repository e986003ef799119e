"""What every command shares: the command registry, and the helpers of the commands that run."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["COMMANDS", "TRACKING", "Command", "arg", "command", "exclusive"]

Handler = Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class Command:
    """A subcommand: its name, one-line help, description (text, or a function that makes it:
    a description that imports the loss registry is made only when ``--help`` needs it), its
    arguments and its handler."""

    name: str
    help: str
    description: str | Callable[[], str] | None
    arguments: tuple[Any, ...]
    run: Handler


COMMANDS: list[Command] = []  # in the order --help lists them


def arg(*flags: str, **options: Any) -> tuple[tuple[str, ...], dict[str, Any]]:
    """One ``add_argument(*flags, **options)``."""
    return flags, options


def exclusive(*arguments: tuple[tuple[str, ...], dict[str, Any]]) -> tuple[str, tuple[Any, ...]]:
    """Arguments of which at most one may be given."""
    return "exclusive", arguments


def command(
    name: str, help: str, *arguments: Any, description: str | Callable[[], str] | None = None
) -> Callable[[Handler], Handler]:
    """Declare the subcommand ``name`` with its ``arguments`` beside the handler it decorates."""

    def register(run: Handler) -> Handler:
        COMMANDS.append(Command(name, help, description, arguments, run))
        return run

    return register


TRACKING = (
    arg("--run-name", help="the run's name in the trackers (default entropy-rl/<method>/seed<k>)"),
    arg("--tracking-dir", help="where the trackers (loggers) write (default: --out/tracking)"),
)


def losses_help() -> str:
    """Every registered loss with its one-line summary."""
    from entropy_rl.losses import available_policy_losses, get_policy_loss

    names = available_policy_losses()
    return "Registered losses — " + "; ".join(f"{n}: {get_policy_loss(n).summary}" for n in names)


def override(section: dict, args: argparse.Namespace, keys: tuple[str, ...]) -> None:
    """Command-line values of ``keys`` (when given) replace the config's."""
    for key in keys:
        if getattr(args, key) is not None:
            section[key] = getattr(args, key)


def announce_start(step: int) -> None:
    if step:
        print(f"resumed from step {step} (its checkpoint)", file=sys.stderr)


def open_run_trackers(args, loggers, method: str, seed: int, config: dict, start: int, out: Path):
    """The run's trackers (``train.loggers`` / ``tabular.loggers``), named ``--run-name`` (the
    pipeline passes ``<profile>/<method>/base<b>/seed<k>``), writing under ``--tracking-dir``."""
    from entropy_rl.tracking import open_trackers

    name = args.run_name or f"entropy-rl/{method}/seed{seed}"
    folder = Path(args.tracking_dir) if args.tracking_dir else out / "tracking"
    return open_trackers(loggers, name, folder, config, start=start, run_dir=out)


def quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()


def progress(total: int, desc: str, keys: tuple[str, ...]):
    """A tqdm bar (every 2 s at most) and the callback that advances it with a row's ``keys``;
    under torchrun only rank 0 shows one."""
    from tqdm import tqdm

    bar = tqdm(total=total, desc=desc, unit="step", mininterval=2.0, disable=not main_rank())

    def update(row: dict) -> None:
        bar.update(1)
        bar.set_postfix({k: f"{row[k]:.3f}" for k in keys if row.get(k) is not None}, refresh=False)

    return bar, update


def main_rank() -> bool:
    """Whether this process reports: rank 0 under torchrun, or the only process."""
    return os.environ.get("RANK", "0") == "0"
