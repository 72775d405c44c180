"""The ``accelsim`` console command.

The CLI is thin: each module in this package defines ``register(app)`` and adds its commands on
top of a Python API. Modules are discovered, so adding a command family never edits this file.
"""
from __future__ import annotations

import importlib
import pkgutil
import sys

import typer
import typer.core
import typer.main

from accelsim.errors import UserError

#: `accelsim --help` lists commands by how often a user needs them; a command not named here (a new module)
#: comes after the everyday ones and before the profile-building tools
ORDER = ("run", "train", "simulate", "compare", "report", "plot", "*", "trace", "hw", "kernels", "calibrate",
         "validate")


class _OrderedGroup(typer.core.TyperGroup):
    def list_commands(self, ctx):
        names = super().list_commands(ctx)
        rank = {n: i for i, n in enumerate(ORDER)}
        return sorted(names, key=lambda n: rank.get(n, rank["*"]))  # stable: new commands keep their order


app = typer.Typer(
    name="accelsim",
    help="Dynamic-sparse BERT training traces and the hardware they would run on.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=_OrderedGroup,
    rich_markup_mode=None,
)


def _plain_help(tapp: typer.Typer) -> None:
    """Plain click help for every sub-app: rich markup ate the '[default: ...]' of help texts and typer's
    rich panels show '<bool>' on flags."""
    tapp.rich_markup_mode = None
    for group in tapp.registered_groups:
        _plain_help(group.typer_instance)


def _register_all() -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)
    _plain_help(app)


_register_all()


def _is_click_error(err: BaseException, name: str) -> bool:
    """Whether ``err`` is click's (or typer's vendored copy of click's) exception class ``name``.

    typer < 0.20 raises ``click.exceptions.*``; newer typer raises the same classes from its bundled
    ``typer._click`` (and does not depend on click at all), so matching on the class name along the MRO
    works with every typer/click pair pyproject allows, without importing either copy.
    """
    return any(cls.__name__ == name for cls in type(err).__mro__)


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _fail(where: str, message: object, code: int = 2) -> None:
    print(f"{where}: error: {_one_line(message)}", file=sys.stderr)
    raise SystemExit(code) from None


def _tidy_type(text: str | None) -> str | None:
    """typer >= 0.2x prints a type after every parameter in help: '<bool>' on flags (noise) and
    '<list[Path]>' on repeated ones (Python, not usage). Flags get none; lists read '<path>...'."""
    if text is None or text == "<bool>":
        return None
    if text.startswith("<list[") and text.endswith("]>"):
        return f"<{text[6:-2].lower()}>..."
    return text


def _command():
    """The click command of ``app``, help types tidied (where this typer shows them at all)."""
    cmd = typer.main.get_command(app)
    stack = [cmd]
    while stack:
        c = stack.pop()
        stack.extend(getattr(c, "commands", {}).values())
        for p in c.params:
            shown = getattr(p, "display_type_rich", None)
            if shown is not None:
                p.display_type_rich = lambda ctx, shown=shown: _tidy_type(shown(ctx))
    return cmd


def main(argv: list[str] | None = None) -> None:
    """Entry point: usage and user errors become one line on stderr and exit status 2."""
    try:
        rc = _command().main(args=argv, prog_name="accelsim", standalone_mode=False)
    except UserError as err:
        _fail("accelsim", err)
    except KeyboardInterrupt:
        print("accelsim: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except SystemExit:
        raise
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError) as err:
        # a path the user named that cannot be read or written: theirs to fix, no traceback
        if err.filename is None:
            raise
        _fail("accelsim", f"{err.filename}: {err.strerror}")
    except Exception as err:  # click/typer usage errors arrive here in non-standalone mode
        if _is_click_error(err, "NoArgsIsHelpError"):  # a command group without its sub-command: show help
            print(err.format_message())
            raise SystemExit(0) from None
        if _is_click_error(err, "ClickException") and hasattr(err, "format_message"):
            ctx = getattr(err, "ctx", None)
            where = ctx.command_path if ctx is not None else "accelsim"
            hint = f" (see {where} --help)" if _is_click_error(err, "UsageError") else ""
            _fail(where, f"{err.format_message()}{hint}", getattr(err, "exit_code", 2) or 2)
        if _is_click_error(err, "Abort"):
            raise SystemExit(130) from None
        raise
    if isinstance(rc, int) and rc:  # typer.Exit(code) in non-standalone mode returns the code
        raise SystemExit(rc)
