"""The command-line family: ``est SUBCOMMAND`` and the ``est-SUBCOMMAND`` scripts share one
:class:`Command` per tool, so flags, ``--help``, ``--version``, quiet and verbose modes, error
reporting, exit codes and atomic output are the same everywhere."""

import argparse
import contextlib
import errno
import importlib
import os
import shutil
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from est import EstError, __version__

EXIT_OK, EXIT_MISMATCH, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_PIPE = 0, 1, 2, 130, 141

EXIT_CODES = """exit status:
  0    success
  1    a check failed: RTL or board differs from golden, a regression case failed
  2    an error: bad file, option, model or build folder, missing tool, timing not met;
       one line on stderr says what and what to do, and nothing half-written is kept
  130  interrupted (Ctrl-C)
  141  the reader of the output went away (`| head`): stopped quietly, as Unix tools do"""

# Every subcommand of est in the order of the flow: its name, the Command that defines it
# ("module:NAME", imported only when that subcommand runs or shows its help: most of them
# import torch or amaranth, which take seconds) and the summary `est --help` lists (the
# Command's own summary; tests/test_cli.py checks that they agree).
SUBCOMMANDS = (
    ("train", "est.sw.cli:TRAIN",
     "Train an EST on a recording (the seeded synthetic population by default); write "
     "model.pt and metrics.json (est-train)."),
    ("compile", "est.compiler.cli:COMPILE",
     "Compile a trained checkpoint into an integer IR, golden traces of every layer, Verilog "
     "and a report (est-compile)."),
    ("sim", "est.sim.cli:SIM",
     "Simulate a compiled build's RTL (or its post-synthesis netlist) and write its trace "
     "(est-sim)."),
    ("compare", "est.sim.cli:COMPARE",
     "Compare golden and RTL traces value by value; exit 0 only if all match (est-compare)."),
    ("synth", "est.boards.cli:SYNTH",
     "Synthesize a compiled build for a board with yosys and nextpnr (YoWASP): bitstream, "
     "utilisation, Fmax, latency per bin (est-synth)."),
    ("run", "est.boards.cli:RUN",
     "Stream a recording through a board programmed with a build (or its RTL in simulation), "
     "write the predictions and check them against the golden model (est-run)."),
    ("report", "est.report:REPORT",
     "Write BUILD/report.html: model, layers, golden vs RTL, rates, boards (est-report)."),
    ("regress", "est.sim.regress:REGRESS",
     "Randomized regression of the hardware against the golden model (est-regress)."),
    ("demo", "est.demo:DEMO",
     "The whole flow on the example EST: compile, simulate, compare, synthesize, run over the "
     "simulated UART (make demo)."),
)


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """``1 lane``, ``4 lanes``; ``nouns`` is the plural when it is not ``noun + "s"``."""
    return f"{n} {noun if n == 1 else nouns or noun + 's'}"


def mismatches(n: int) -> str:
    """``1 mismatch``, ``0 mismatches``."""
    return plural(n, "mismatch", "mismatches")


def shown_default(action: argparse.Action) -> bool:
    """Whether ``--help`` states ``action``'s default: an option that takes a value and has a
    default other than None or an empty list (flags, ``--help`` and ``--version`` have none)."""
    return (bool(action.option_strings) and action.nargs != 0
            and action.default not in (None, argparse.SUPPRESS) and action.default != [])


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Description and epilog as written; every option's help ends with ``(default: X)``
    unless it already says what the default is."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if shown_default(action) and "default" not in text:
            text += " (default: %(default)s)"
        return text


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
        parser.formatter_class = HelpFormatter
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
    exit 2 (with a traceback under ``--verbose``), Ctrl-C exit 130, a closed stdout (``| head``)
    exit 141 without a traceback."""
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
    except BrokenPipeError:
        # stdout's reader has closed it (`| head`): no traceback; what is left to print goes
        # nowhere, so that the interpreter's last flush does not fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_PIPE


def load(name: str) -> Command:
    """The :class:`Command` of subcommand ``name`` (importing its module)."""
    module, attr = next(where for n, where, _ in SUBCOMMANDS if n == name).split(":")
    return getattr(importlib.import_module(module), attr)


def commands() -> list[Command]:
    """Every subcommand of ``est``, in the order of the flow (this imports them all)."""
    return [load(name) for name, _, _ in SUBCOMMANDS]


def est_main(argv: list[str] | None = None) -> int:
    """``est SUBCOMMAND [options]``: the whole family behind one command.

    Only the subcommand named on the command line is loaded and given its options, so
    ``est --help`` and ``est NAME --help`` import nothing the listing or NAME does not need.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
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
    # est's own options are flags, so the first other word is the subcommand
    chosen = next((word for word in argv if not word.startswith("-")), None)
    for name, _, summary in SUBCOMMANDS:
        subparser = sub.add_parser(name, help=summary)
        if name == chosen:
            load(name).build_parser(subparser)
    args = parser.parse_args(argv)
    return execute(f"est {args.command.name}", args)


def script() -> int:
    return est_main()


STAGING_SUFFIX = 18  # characters a staging folder adds to a name: "." and ".partial-XXXXXXXX"


def _shown(path: Path) -> str:
    """``path`` for a message, a name longer than 60 characters cut short."""
    return "/".join(part if len(part) <= 60 else f"{part[:24]}...({len(part)} characters)"
                    for part in str(path).split("/"))


def _cannot_write(out: Path, e: OSError, hint: str) -> EstError:
    """The error for an ``OSError`` met while making (or replacing) output folder ``out``."""
    if e.errno == errno.ENAMETOOLONG:
        reason = (f"a name is too long for the file system (est also makes a staging folder "
                  f".NAME.partial-XXXXXXXX beside it, {STAGING_SUFFIX} characters longer)")
    elif e.errno in (errno.ENOTDIR, errno.EEXIST):
        files = [p for p in reversed(out.parents) if p.exists() and not p.is_dir()]
        reason = f"{_shown(files[0])} is a file, not a folder" if files else e.strerror
    else:
        reason = e.strerror or str(e)
    return EstError(f"cannot write the output folder {_shown(out)}: {reason}; {hint}")


def check_output(out: Path, marker: str, hint: str = "choose another output folder") -> None:
    """Fail now, before any work, unless :func:`staged_output` can write ``out``: it must be
    absent or an earlier est output (holding ``marker``), and a staging folder must be
    creatable beside it (a read-only file system, no permission, a name too long, a parent
    that is a file all fail here). Nothing the check creates is kept."""
    out = Path(out)
    made: list[Path] = []
    try:
        if out.exists() and not (out / marker).exists():
            raise EstError(f"{out} exists and is not an est output folder (no {marker}); "
                           f"{hint} or remove it")
        for parent in reversed(out.parents):
            if not parent.is_dir():
                parent.mkdir()
                made.append(parent)
        os.rmdir(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    except OSError as e:
        raise _cannot_write(out, e, hint) from None
    finally:
        for parent in reversed(made):
            with contextlib.suppress(OSError):
                parent.rmdir()


@contextlib.contextmanager
def staged_output(out: Path, marker: str, hint: str = "choose another output folder"
                  ) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``out``; on success it replaces ``out``, on any
    error it is deleted, so ``out`` is either the old complete result or the new one.

    An existing ``out`` is replaced only if it holds ``marker`` (a file an earlier run wrote);
    anything else is left alone and reported. A folder that cannot be written is an
    :class:`EstError` ending with ``hint`` (tools call :func:`check_output` first, so that it
    comes before the work).
    """
    out = Path(out)
    check_output(out, marker, hint)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    except OSError as e:
        raise _cannot_write(out, e, hint) from None
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        if out.exists():
            shutil.rmtree(out)
        tmp.chmod(0o755)
        tmp.rename(out)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _cannot_write(out, e, hint) from None
