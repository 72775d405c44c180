"""The ``accelsim`` console command.

The CLI is thin: each module in this package defines ``register(app)`` and adds its commands on
top of a Python API. Modules are discovered, so adding a command family never edits this file.
"""
from __future__ import annotations

import importlib
import pkgutil
import sys

import typer

from accelsim.errors import UserError

app = typer.Typer(
    name="accelsim",
    help="Dynamic-sparse BERT training traces and the hardware they would run on.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register_all() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


_register_all()


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line on stderr and exit status 2."""
    try:
        app(args=argv, standalone_mode=False)
    except UserError as err:
        print(f"accelsim: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("accelsim: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except SystemExit:
        raise
    except Exception as err:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(err, click.exceptions.ClickException):
            print(f"accelsim: error: {err.format_message()}", file=sys.stderr)
            raise SystemExit(err.exit_code) from None
        if isinstance(err, click.exceptions.Abort):
            raise SystemExit(130) from None
        raise
