"""One-line notes the commands print about the hardware they simulate (not a command module: no register)."""
from __future__ import annotations

import sys
from collections.abc import Iterable


def warn_foreign_cpus(hardware: Iterable[str], *, quiet: bool = False) -> list[str]:
    """Warn (one stderr line each) for every CPU profile calibrated on another CPU than this one: a newcomer
    reads a bundled CPU profile as "my CPU". Returns the warnings. Unloadable names are left to the command."""
    from accelsim.errors import UserError
    from accelsim.hardware import load_profile
    from accelsim.kernels.machine import cpu_profile_note, machine_info

    here, seen, out = None, set(), []
    for name in hardware:
        try:
            profile = load_profile(name)
        except UserError:
            continue
        if profile.kind != "cpu" or profile.name in seen:
            continue
        seen.add(profile.name)
        here = here or machine_info()
        text, foreign = cpu_profile_note(profile, here)
        if foreign:
            out.append(text)
            if not quiet:
                print(f"accelsim: warning: {text}", file=sys.stderr)
    return out
