"""Surgical edits of a bundled profile YAML: replace or add path blocks, provenance entries and ``fitted:``.

``profile_to_yaml`` would rewrite the whole file (flow-style lists, comments and unit spellings lost);
a fit only changes a few paths, so this edits the lines of those paths and their provenance and leaves
every other line as its author wrote it. The hwconfigs files share one layout (top-level keys at column
0, path names and source keys indented 2, assumptions as "  - key: text"), which is all this relies on;
the result is re-read with :func:`accelsim.hardware.load_profile_text` before it is written, so a broken
edit never lands.
"""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from accelsim.hardware import HardwareProfile, load_profile_text
from accelsim.hardware.profile import PathSpec, _path_dict


def _section(lines: list[str], key: str) -> tuple[int, int]:
    """[start, end) of the top-level section ``key:`` (start = the header line)."""
    start = next(i for i, ln in enumerate(lines) if ln.startswith(f"{key}:"))
    end = next((i for i in range(start + 1, len(lines)) if lines[i][:1] not in (" ", "", "#")), len(lines))
    return start, end


def _scalar(v) -> str:
    if isinstance(v, str):
        plain = v and not any(c in v for c in ":#{}[],&*!|>'\"%@`") and v.strip() == v and not v[0].isdigit()
        return v if plain else json.dumps(v)
    if isinstance(v, float):
        text = f"{v:.4g}"
        mantissa, e, exp = text.partition("e")
        # yaml.safe_load (YAML 1.1) reads "1e-05" as a string: its floats need a dot in the mantissa
        return f"{mantissa}.0e{exp}" if e and "." not in mantissa else text
    return str(v)


def _flow(v) -> str:
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_flow(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_flow(x) for x in v) + "]"
    return _scalar(v)


def path_block(spec: PathSpec) -> list[str]:
    return [f"  {_scalar(spec.name)}:"] + [f"    {k}: {_flow(v)}" for k, v in _path_dict(spec).items()]


#: path keys a fit may change; an existing block keeps every other line as written (dtypes: the data may show a
#: path's kernel running another dtype, e.g. Triton's BSR in fp32 on the A100)
FIT_KEYS = ("description", "peak_fraction", "d_half", "exponent", "overhead", "dispatch_overhead", "relayout_overhead",
            "row_multiple", "block_sizes", "dtypes", "block_reread_bandwidth")


def _merge(old: list[str], new: list[str]) -> list[str]:
    """An existing path block with only its :data:`FIT_KEYS` lines replaced (added, or dropped when the
    fit left the term at its default) from the rendered ``new`` block."""
    fresh = {_key_of(ln): ln for ln in new[1:]}
    out = [old[0]]
    for ln in old[1:]:
        key = _key_of(ln)
        if key in FIT_KEYS:
            if key in fresh:
                line = fresh.pop(key)
                out.append(ln if _same(ln, line) else line)  # an unchanged value keeps its spelling
        else:
            out.append(ln)
    known = [i for i, x in enumerate(out) if _key_of(x) in FIT_KEYS + ("pattern",)]
    at = (known[-1] if known else 0) + 1
    for key in FIT_KEYS:
        if key in fresh:
            out.insert(at, fresh[key])
            at += 1
    return out


def _same(a: str, b: str) -> bool:
    try:
        return yaml.safe_load(a.strip()) == yaml.safe_load(b.strip())
    except yaml.YAMLError:
        return False


def _key_of(line: str) -> str | None:
    body = line.strip()
    if body.startswith("- "):
        body = body[2:]
    if ":" not in body:
        return None
    key = body.split(": ", 1)[0].rstrip(":")
    return key.strip("\"'")


def edit_profile(text: str, profile: HardwareProfile, paths: list[str], after: dict[str, str],
                 drop_keys: set[str], sources: dict[str, str], fitted: dict) -> str:
    """The YAML ``text`` with the blocks of ``paths`` replaced by ``profile``'s (new ones inserted after the
    block named in ``after``), provenance entries in ``drop_keys`` removed, ``sources`` added and the
    top-level ``fitted:`` set."""
    lines = text.rstrip("\n").split("\n")
    for name in paths:
        start, end = _section(lines, "paths")
        names = [i for i in range(start + 1, end) if lines[i].startswith("  ") and not lines[i].startswith("   ")
                 and lines[i].strip() and not lines[i].strip().startswith("#")]
        block = path_block(profile.paths[name])
        hit = [i for i in names if _key_of(lines[i]) == name]
        if hit:
            i = hit[0]
            j = next((n for n in names if n > i), end)
            lines[i:j] = _merge(lines[i:j], block)
        else:
            base = [i for i in names if _key_of(lines[i]) == after.get(name)]
            i = base[0] if base else names[-1]
            j = next((n for n in names if n > i), end)
            lines[j:j] = block
    for section in ("sources", "assumptions"):
        start, end = _section(lines, section)
        keep = [ln for ln in lines[start + 1:end] if _key_of(ln) not in drop_keys]
        if section == "sources":
            keep += [f"  {_scalar(k)}: {json.dumps(v)}" for k, v in sources.items()]
        lines[start + 1:end] = keep
    if any(ln.startswith("fitted:") for ln in lines):
        start, end = _section(lines, "fitted")
        del lines[start:end]
    lines += yaml.safe_dump({"fitted": fitted}, sort_keys=False, width=120, default_flow_style=None).rstrip("\n").split("\n")
    out = "\n".join(lines) + "\n"
    load_profile_text(out, source=f"{profile.name} (edited)")  # refuses an edit that breaks the profile
    return out


def write_profile(path: Path, *args, **kwargs) -> None:
    path.write_text(edit_profile(path.read_text(), *args, **kwargs))


def write_element_times(path: Path, times: dict[str, dict], source: str) -> None:
    """Set the vector path's element times of ``times`` ({role: {phase: seconds per element, or a size table}})
    in the profile YAML at ``path``, each role citing ``source``; its leading comment lines are kept. Used on a
    calibrated profile (benchmarks/results/), which ``profile_to_yaml`` wrote whole in the first place, so the
    file is rewritten whole rather than edited line by line."""
    import dataclasses

    from accelsim.hardware.profile import profile_to_yaml

    text = path.read_text()
    head = "".join(line for line in text.splitlines(keepends=True) if line.startswith("#"))
    prof = load_profile_text(text, source=str(path))
    vector = prof.paths["vector"]
    paths = {**prof.paths, "vector": dataclasses.replace(vector, element_time_s={**vector.element_time_s, **times})}
    sources = {**prof.sources, **{f"paths.vector.element_time.{role}": source for role in times}}
    body = profile_to_yaml(dataclasses.replace(prof, paths=paths, sources=sources))
    load_profile_text(body, source=str(path))  # still a valid profile before it replaces the file
    path.write_text(head + body)
