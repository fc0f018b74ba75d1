"""The command-line family: ``est SUBCOMMAND`` and the ``est-SUBCOMMAND`` scripts share one
:class:`Command` per tool, so flags, ``--help``, ``--version``, quiet and verbose modes, error
reporting, exit codes and atomic output are the same everywhere."""

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from est import EstError, __version__

EXIT_OK, EXIT_MISMATCH, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

EXIT_CODES = """exit status:
  0    success
  1    a check failed: RTL or board differs from golden, a regression case failed
  2    an error: bad file, option, model or build folder, missing tool, timing not met;
       one line on stderr says what and what to do, and nothing half-written is kept
  130  interrupted (Ctrl-C)"""


@dataclass(frozen=True)
class Command:
    """One tool: ``est NAME ...`` and the script ``est-NAME``.

    ``configure`` adds the tool's own arguments to a parser; ``run`` does the work on the parsed
    arguments and returns the exit status (or raises :class:`EstError`).
    """

    name: str
    summary: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    examples: str = ""

    def build_parser(self, parser: argparse.ArgumentParser | None = None
                     ) -> argparse.ArgumentParser:
        """The tool's parser: a new ``est-NAME`` one, or ``parser`` (an ``est NAME`` one)."""
        parser = parser or argparse.ArgumentParser(prog=f"est-{self.name}")
        parser.description = self.summary
        parser.epilog = (f"examples:\n{self.examples}\n\n" if self.examples else "") + EXIT_CODES
        parser.formatter_class = argparse.RawDescriptionHelpFormatter
        self.configure(parser)
        output = parser.add_argument_group("output")
        quiet = output.add_mutually_exclusive_group()
        quiet.add_argument("-q", "--quiet", action="store_true",
                           help="print nothing but errors (no progress, no summary)")
        quiet.add_argument("-v", "--verbose", action="store_true",
                           help="show the tools' own output (simulators, yosys, nextpnr) and "
                                "a traceback with errors")
        parser.add_argument("--version", action="version", version=f"est {__version__}")
        parser.set_defaults(command=self)
        return parser

    def main(self, argv: list[str] | None = None) -> int:
        """Parse ``argv`` and run; errors propagate (for callers in Python)."""
        args = self.build_parser().parse_args(argv)
        with output_mode(args):
            return self.run(args)

    def script(self) -> int:
        """The ``est-NAME`` console script."""
        return execute(f"est-{self.name}", self.build_parser().parse_args())


@contextlib.contextmanager
def output_mode(args: argparse.Namespace) -> Iterator[None]:
    """``--quiet``: stdout and stderr (progress bars, tool logs) go to the null device until the
    command returns; errors are printed afterwards by :func:`execute`."""
    if not getattr(args, "quiet", False):
        yield
        return
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), \
            contextlib.redirect_stderr(null):
        yield


def execute(prog: str, args: argparse.Namespace) -> int:
    """Run a parsed command; an :class:`EstError` becomes ``prog: error: ...`` on stderr and
    exit 2 (with a traceback under ``--verbose``), Ctrl-C exit 130."""
    try:
        with output_mode(args):
            return args.command.run(args)
    except EstError as e:
        if getattr(args, "verbose", False):
            traceback.print_exc()
        print(f"{prog}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; nothing half-written was kept", file=sys.stderr)
        return EXIT_INTERRUPTED


def commands() -> list[Command]:
    """Every subcommand of ``est``, in the order of the flow."""
    from est.boards.cli import RUN, SYNTH
    from est.compiler.cli import COMPILE
    from est.demo import DEMO
    from est.report import REPORT
    from est.sim.cli import COMPARE, SIM
    from est.sim.regress import REGRESS
    from est.sw.train import TRAIN

    return [TRAIN, COMPILE, SIM, COMPARE, SYNTH, RUN, REPORT, REGRESS, DEMO]


def est_main(argv: list[str] | None = None) -> int:
    """``est SUBCOMMAND [options]``: the whole family behind one command."""
    parser = argparse.ArgumentParser(
        prog="est", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="est: a trained spiking network in, open-FPGA gateware out, bit-exact with "
                    "a numpy golden model.",
        epilog="examples:\n  est train --config examples/est_tiny.toml --out runs/tiny\n"
               "  est compile runs/tiny/model.pt -o build/tiny --lanes auto\n"
               "  est sim build/tiny && est compare build/tiny\n"
               "  est synth build/tiny --board icebreaker\n"
               "  est run build/tiny --port /dev/ttyUSB1\n"
               "  est report build/tiny\n\n"
               "'est SUBCOMMAND -h' shows a subcommand's options; every subcommand is also an "
               "est-SUBCOMMAND script.\n\n" + EXIT_CODES)
    parser.add_argument("--version", action="version", version=f"est {__version__}")
    sub = parser.add_subparsers(title="subcommands", metavar="SUBCOMMAND", required=True)
    for command in commands():
        command.build_parser(sub.add_parser(command.name, help=command.summary))
    args = parser.parse_args(argv)
    return execute(f"est {args.command.name}", args)


def script() -> int:
    return est_main()


@contextlib.contextmanager
def staged_output(out: Path, marker: str) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``out``; on success it replaces ``out``, on any
    error it is deleted, so ``out`` is either the old complete result or the new one.

    An existing ``out`` is replaced only if it holds ``marker`` (a file an earlier run wrote);
    anything else is left alone and reported.
    """
    out = Path(out)
    if out.exists() and not (out / marker).exists():
        raise EstError(f"{out} exists and is not an est output folder (no {marker}); choose "
                       f"another -o or remove it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    tmp.chmod(0o755)
    tmp.rename(out)
