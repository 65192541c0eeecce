"""`dorag`: one entry point, one subcommand per stage. Errors print one line; --debug shows the traceback."""

from __future__ import annotations

import logging
import os
import sys
import traceback
import warnings
from typing import Optional

import typer

from dorag.core.errors import DoragError

app = typer.Typer(
    name="dorag",
    help="Adapt code language models (LoRA, DoRA, QLoRA, RAG) and measure what each adaptation buys.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _register() -> None:
    from dorag.cli import (ablate_cmd, adapters_cmd, benchmarks_cmd, data_cmd, docstring_cmd, evaluate_cmd, generate_cmd,
                           gate_cmd, index_cmd, models_cmd, quickstart_cmd, retriever_cmd, serve_cmd, train_cmd)

    app.add_typer(models_cmd.app, name="models")
    app.add_typer(benchmarks_cmd.app, name="benchmarks")
    app.add_typer(index_cmd.app, name="index")
    app.command("retrieve")(index_cmd.retrieve)
    app.command("generate", context_settings={"allow_extra_args": False})(generate_cmd.generate)
    app.command("evaluate")(evaluate_cmd.evaluate)
    app.add_typer(data_cmd.app, name="data")
    app.command("train")(train_cmd.train)
    app.command("train-retriever")(retriever_cmd.train_retriever)
    app.add_typer(adapters_cmd.app, name="adapters")
    app.command("docstring")(docstring_cmd.docstring)
    app.command("quickstart")(quickstart_cmd.quickstart)
    app.command("gate")(gate_cmd.gate)
    app.command("ablate")(ablate_cmd.ablate)
    app.command("report")(ablate_cmd.report)
    app.command("publish")(ablate_cmd.publish)
    app.command("serve")(serve_cmd.serve)
    app.add_typer(serve_cmd.feedback_app, name="feedback")


_register()


def _version(value: bool) -> None:
    if value:
        import platform

        from dorag import __version__

        print(f"dorag {__version__} (Python {platform.python_version()})")
        raise typer.Exit(0)


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="print the version and exit")) -> None:
    """Adapt code language models (LoRA, DoRA, QLoRA, RAG) and measure what each adaptation buys."""


def _quiet_libraries() -> None:
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    # bitsandbytes warns on import (via peft/sentence-transformers) about an optional CPU kernel hub download.
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"transformers\.")  # deprecations aimed at library authors


def os_error(exc: OSError) -> str:
    """One line for a failed file operation: which path, what is wrong, and the fix."""
    import errno

    path = _user_path(str(exc.filename2 or exc.filename or ""))
    fixes = {
        errno.EEXIST: f"{path} exists and is not a directory; give another path or move that file",
        errno.ENOTDIR: f"{path}: this path or a parent of it is a file, not a directory; give another path",
        errno.EISDIR: f"{path} is a directory; give a file path",
        errno.EACCES: f"{path}: permission denied; give a path you can write to",
        errno.EPERM: f"{path}: operation not permitted; give a path you can write to",
        errno.ENOSPC: f"no space left on the device{' writing ' + path if path else ''}; free some space and re-run "
                      "(finished work is kept)",
        errno.ENOENT: f"{path}: no such file or directory",
        errno.EROFS: f"{path}: read-only file system; give a writable path",
    }
    if exc.errno in fixes and (path or exc.errno == errno.ENOSPC):
        return fixes[exc.errno]
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first} (re-run with --debug for the traceback)"


def _user_path(path: str) -> str:
    """The path the user gave, not the temporary one an atomic write was using (``.name.XXXX.tmp``,
    ``name.tmp``) when it failed."""
    if not path:
        return path
    head, name = os.path.split(path)
    if name.startswith(".") and name.endswith(".tmp") and name.count(".") >= 3:
        name = name[1:].rsplit(".", 2)[0]
    elif name.endswith(".tmp"):
        name = name[: -len(".tmp")]
    return os.path.join(head, name)


def _click_errors() -> tuple[type[Exception], ...]:
    """click's ClickException, and the copy of it that newer typer releases vendor as ``typer._click``."""
    import click

    kinds: list[type[Exception]] = [click.ClickException]
    try:
        from typer._click.exceptions import ClickException as VendoredClickException
    except ImportError:  # typer < 0.2x uses click itself
        pass
    else:
        kinds.append(VendoredClickException)
    return tuple(kinds)


def main(argv: Optional[list[str]] = None) -> int:
    """Console entry point; returns the exit code (0 ok, 1 error, 2 usage error, 130 interrupted)."""
    import click

    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    verbose = "-v" in args or "--verbose" in args
    args = [a for a in args if a not in ("-v", "--verbose")]
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    _quiet_libraries()
    command = typer.main.get_command(app)
    try:
        rv = command.main(args=args, prog_name="dorag", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except (click.exceptions.Abort, typer.Abort):
        print("aborted", file=sys.stderr)
        return 130
    except _click_errors() as exc:  # a usage error: one line, and where the help is
        ctx = getattr(exc, "ctx", None)
        where = f" (see {ctx.command_path} --help)" if ctx is not None and getattr(exc, "exit_code", 1) == 2 else ""
        print(f"error: {exc.format_message()}{where}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted; re-run the same command to resume", file=sys.stderr)
        return 130
    except OSError as exc:  # a path the user can fix (a file where a directory goes, permissions, disk full)
        if debug:
            traceback.print_exc()
        print(f"error: {os_error(exc)}", file=sys.stderr)
        return 1
    except DoragError as exc:
        if debug:
            traceback.print_exc()
        msg = str(exc)
        print(f"error: {msg}" if "\n" not in msg else f"error: {msg}", file=sys.stderr)
        return 1
    except Exception as exc:  # an unexpected failure: still one line unless --debug
        if debug:
            traceback.print_exc()
        else:
            first = (str(exc).strip().splitlines() or [""])[0]
            print(f"error: {type(exc).__name__}: {first} (re-run with --debug for the traceback)", file=sys.stderr)
        return 1


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
