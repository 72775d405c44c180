"""Every command answers a usage or input mistake with one line on stderr and exit status 2.

Commands are enumerated from the typer app itself (registered commands and sub-apps), so a command
module added later is covered without editing this file. Parameters are read from each command's
signature (typer's OptionInfo / ArgumentInfo), which is stable across the typer versions pyproject allows.
"""
from __future__ import annotations

import inspect
import subprocess
import sys
import typing
from pathlib import Path

import pytest
import typer

from accelsim.app.cli import app, main


def _commands(tapp: typer.Typer, prefix: tuple[str, ...] = ()):
    """(argv prefix, callback) for every leaf command of ``tapp``."""
    for info in tapp.registered_commands:
        name = info.name or info.callback.__name__.replace("_", "-")
        yield prefix + (name,), info.callback
    for group in tapp.registered_groups:
        sub = group.typer_instance
        name = group.name or sub.info.name
        yield from _commands(sub, prefix + (name,))


def _params(callback):
    """(kind, flag or None, required, base type) per parameter of a command callback."""
    hints = typing.get_type_hints(callback)
    for pname, param in inspect.signature(callback).parameters.items():
        info = param.default
        kind = "argument" if isinstance(info, typer.models.ArgumentInfo) else "option"
        decls = getattr(info, "param_decls", None) or ()
        flags = [d for d in decls if d.startswith("--")]
        flag = flags[0].split("/")[0] if flags else "--" + pname.replace("_", "-")
        default = getattr(info, "default", info)
        required = default is ... or default is inspect.Parameter.empty
        base = hints.get(pname)
        args = [a for a in typing.get_args(base) if a is not type(None)]
        if typing.get_origin(base) is typing.Union and len(args) == 1:
            base = args[0]
        yield kind, (None if kind == "argument" else flag), required, base


COMMANDS = sorted(_commands(app), key=lambda c: c[0])
IDS = [" ".join(path) for path, _ in COMMANDS]


def _invoke(argv: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code, capsys.readouterr().err


def _assert_one_line(argv: list[str], code: int, err: str) -> None:
    lines = err.strip().splitlines()
    assert code == 2, f"{argv}: exit {code}, stderr {err!r}"
    assert len(lines) == 1, f"{argv}: {len(lines)} stderr lines: {err!r}"
    assert "Traceback" not in err and "error" in lines[0], f"{argv}: {err!r}"


def test_every_command_is_enumerated():
    # guards the enumeration itself: these families exist, and nothing was dropped silently
    names = set(IDS)
    for expected in ("run", "train", "simulate", "compare", "report", "hw show", "hw check", "kernels bench",
                     "trace check", "calibrate", "validate"):
        assert expected in names, f"{expected} missing from {sorted(names)}"


@pytest.mark.parametrize("path,callback", COMMANDS, ids=IDS)
def test_unknown_option(path, callback, capsys):
    argv = [*path, "--no-such-option"]
    _assert_one_line(argv, *_invoke(argv, capsys))


@pytest.mark.parametrize("path,callback", COMMANDS, ids=IDS)
def test_missing_required(path, callback, capsys):
    if not any(required for _, _, required, _ in _params(callback)):
        pytest.skip("no required parameter")
    argv = list(path)
    _assert_one_line(argv, *_invoke(argv, capsys))


@pytest.mark.parametrize("path,callback", COMMANDS, ids=IDS)
def test_missing_input_path(path, callback, capsys, tmp_path):
    # the first positional names an input (run, experiment, profile, measurements); it does not exist
    params = list(_params(callback))
    if not any(kind == "argument" for kind, *_ in params):
        pytest.skip("no positional argument")
    missing = str(tmp_path / "does-not-exist")
    argv = [*path, missing]
    for kind, flag, required, _ in params:
        if kind == "option" and required:
            argv += [flag, str(tmp_path / f"missing-{flag.strip('-')}")]
    code, err = _invoke(argv, capsys)
    _assert_one_line(argv, code, err)
    assert not any(tmp_path.iterdir()), f"{argv} wrote {list(tmp_path.iterdir())} on bad input"


NUMERIC = [(path, cb, flag) for path, cb in COMMANDS for kind, flag, _, base in _params(cb)
           if kind == "option" and base in (int, float)]


@pytest.mark.parametrize("path,callback,flag", NUMERIC, ids=[f"{' '.join(p)} {f}" for p, _, f in NUMERIC])
def test_bad_number(path, callback, flag, capsys):
    argv = [*path, flag, "not-a-number"]
    _assert_one_line(argv, *_invoke(argv, capsys))


def test_group_without_subcommand_shows_help(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["hw"])
    assert exc.value.code == 0
    assert "check" in capsys.readouterr().out


def test_console_entry_point_one_line():
    # the real process: what a user sees, including anything printed before the handler runs
    proc = subprocess.run([sys.executable, "-P", "-m", "accelsim", "simulate", "no-such-run"],
                          capture_output=True, text=True, timeout=300, cwd=Path(__file__).parent)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert "--hw" in proc.stderr


@pytest.mark.parametrize("module", ["click.exceptions", "typer._click.exceptions"])
def test_handler_takes_either_click(module, monkeypatch, capsys):
    # typer < 0.20 raises click's own classes, newer typer its vendored copy: the handler must take both
    import importlib

    import accelsim.app.cli as cli

    try:
        exceptions = importlib.import_module(module)
    except ImportError:
        pytest.skip(f"{module} not installed")

    class Raising:
        def main(self, **_kwargs):
            raise exceptions.BadParameter("expected a number", param_hint="'--devices'")

    monkeypatch.setattr(cli, "_command", Raising)
    code, err = _invoke(["simulate"], capsys)
    _assert_one_line(["simulate"], code, err)
    assert "--devices" in err


@pytest.mark.parametrize("path,callback", COMMANDS, ids=IDS)
def test_help_shows_usage_words_not_python_types(path, callback, capsys):
    try:
        main([*path, "--help"])
    except SystemExit as exc:
        assert exc.code in (0, None)
    out = capsys.readouterr().out
    assert "Usage:" in out
    assert "<bool>" not in out and "list[" not in out, out
