"""Shared plumbing of the command-line tools: error reporting, exit codes, atomic output."""

import contextlib
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from est import EstError

EXIT_OK, EXIT_MISMATCH, EXIT_USAGE = 0, 1, 2


def entry(prog: str, main: Callable[[list[str] | None], int], argv: list[str] | None) -> int:
    """Run ``main``; an :class:`EstError` becomes ``prog: error: ...`` on stderr and exit 2."""
    try:
        return main(argv)
    except EstError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; nothing half-written was kept", file=sys.stderr)
        return 130


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
