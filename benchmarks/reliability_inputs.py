"""Damaged inputs for the reliability campaign (benchmarks/bench_reliability.py) and its fuzz tests
(tests/test_reliability.py): mutations of a valid manifest, table part or hardware profile, each with a
label from an *independent* reading of the documentation (docs/trace-format.md "Validation and limits",
docs/hardware-profiles.md): ``"invalid"`` (the docs call it invalid: it must be refused), ``"valid"`` (it
must be accepted) or ``None`` (no claim; it must only not crash or hang).

The oracles here deliberately do not import the validators they check (accelsim.trace_rules,
accelsim.hardware.schema); they restate the documented rules.
"""
from __future__ import annotations

import copy
import math
import random
from typing import Any

import numpy as np
import pyarrow as pa
import yaml

# ---------------------------------------------------------------------------------------------- manifests

#: Documented limits (docs/trace-format.md), restated.
MODEL_LIMITS = {"layers": 1024, "hidden": 65536, "heads": 1024, "intermediate": 2 ** 20, "vocab": 2 ** 24,
                "seq_len": 2 ** 20}
LIMITS = {"batch_size": 2 ** 20, "steps": 10 ** 7, "seed": 2 ** 32 - 1}
ROLES = ("q", "k", "v", "attn_out", "ffn_in", "ffn_out", "mlm_transform", "other")

NASTY: list[Any] = [True, False, None, 0, -1, 1, 2, 3, 7, 16, 1.0, 0.5, 1.5, -0.5, 1e-9, 1.7, 2 ** 31, 2 ** 32,
                    2 ** 63, 2 ** 70, 10 ** 12, 1024, 1025, 65536, 65537, 2 ** 20 + 1, 10 ** 7 + 1, float("nan"),
                    float("inf"), float("-inf"), "", "x", "1", "fp32", "bf16", "int8", "q", "ffn_in", "dense",
                    "fff", "gather", [], {}, [1], [64, 64], [0, 64], [64, 64, 64], [True, 64], ["64", 64],
                    {"type": "fff", "trees": 1, "depth": 3}, {"type": "fff", "trees": 1, "depth": 60},
                    {"type": "fff", "trees": 0, "depth": 3}, {"type": "fff"}, {"type": "moe"}, {"name": "rigl"}]

#: Manifest paths the mutations touch: the documented fields (other engineers' newer fields are left alone).
TOP = ("model", "batch_size", "dtype", "method", "layers", "seed", "steps", "synthetic", "versions", "host",
       "extra", "schema_version")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) and math.isfinite(v)


def manifest_doc_valid(m: Any, pattern_layers: dict[str, tuple[int, int]]) -> bool:
    """The documented rules, written out again; ``pattern_layers``: layer -> (rows, cols) in patterns.parquet."""
    if not isinstance(m, dict) or not _is_int(m.get("schema_version")) or m["schema_version"] != 1:
        return False
    model = m.get("model")
    if not isinstance(model, dict):
        return False
    for key, hi in MODEL_LIMITS.items():
        if not (_is_int(model.get(key)) and 1 <= model[key] <= hi):
            return False
    if "params" in model and model["params"] is not None and not (_is_int(model["params"]) and
                                                                  1 <= model["params"] <= 10 ** 13):
        return False
    ffn = model.get("ffn")
    if ffn is not None:
        if not isinstance(ffn, dict) or ffn.get("type") not in ("dense", "fff"):
            return False
        if "trees" in ffn and ffn["trees"] is not None and not (_is_int(ffn["trees"]) and 1 <= ffn["trees"] <= 65536):
            return False
        if "depth" in ffn and ffn["depth"] is not None and not (_is_int(ffn["depth"]) and 0 <= ffn["depth"] <= 20):
            return False
        if ffn["type"] == "fff" and (ffn.get("trees") is None or ffn.get("depth") is None):
            return False
        if ffn.get("train_mode", "gather") not in ("gather", "masked"):
            return False
    if not (_is_int(m.get("batch_size")) and 1 <= m["batch_size"] <= LIMITS["batch_size"]):
        return False
    if m.get("dtype") not in ("fp32", "bf16", "fp16"):
        return False
    method = m.get("method")
    if not isinstance(method, dict) or not isinstance(method.get("name"), str) or not method["name"]:
        return False
    for key in ("seed", "steps"):
        if key in m and not (_is_int(m[key]) and 0 <= m[key] <= LIMITS[key]):
            return False
    if "synthetic" in m and not isinstance(m["synthetic"], bool):
        return False
    for key in ("host", "extra"):
        if key in m and not isinstance(m[key], dict):
            return False
    if "versions" in m and not (isinstance(m["versions"], dict) and all(isinstance(v, str)
                                                                         for v in m["versions"].values())):
        return False
    layers = m.get("layers")
    if not isinstance(layers, list):
        return False
    names = []
    shapes = {}
    for item in layers:
        if not isinstance(item, dict):
            return False
        name = item.get("name")
        if not isinstance(name, str) or not 0 < len(name) <= 512 or item.get("role") not in ROLES:
            return False
        shape = item.get("shape")
        if not (isinstance(shape, list) and len(shape) == 2 and all(_is_int(s) and 1 <= s <= 2 ** 20 for s in shape)):
            return False
        td = item.get("target_density")
        if not (_is_num(td) and 0 < td <= 1):
            return False
        if "sparse" in item and not isinstance(item["sparse"], bool):
            return False
        names.append(name)
        shapes[name] = tuple(shape)
    if len(set(names)) != len(names):
        return False
    return all(name in shapes and shapes[name] == rc for name, rc in pattern_layers.items())


def _paths(m: dict) -> list[tuple]:
    out: list[tuple] = [(k,) for k in TOP]
    out += [("model", k) for k in (*MODEL_LIMITS, "params", "ffn")]
    out += [("method", "name")]
    for i in range(min(len(m.get("layers", [])), 4)):
        out += [("layers", i, k) for k in ("name", "role", "shape", "target_density", "sparse")]
    return out


def _set(d: Any, path: tuple, value: Any, delete: bool = False) -> None:
    for key in path[:-1]:
        d = d[key]
    if delete:
        if isinstance(d, dict):
            d.pop(path[-1], None)
        return
    d[path[-1]] = value


def mutate_manifest(base: dict, rng: random.Random) -> dict | bytes:
    """A damaged copy of ``base`` (a dict), or raw bytes for the file (broken JSON, bad encodings)."""
    kind = rng.random()
    if kind < 0.06:
        text = __import__("json").dumps(base)
        return rng.choice([text[: rng.randrange(len(text))].encode(), b"\xff\xfe" + text.encode("utf-16-le"),
                           text.encode().replace(b'"', b"\xc3", 1), b"[" * 100_000 + b"]" * 100_000,
                           b'{"a":' * 50_000 + b"1" + b"}" * 50_000, b"", b"null", b"[]", b"42"])
    m = copy.deepcopy(base)
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        paths = _paths(m) if isinstance(m.get("layers"), list) and isinstance(m.get("model"), dict) \
            and isinstance(m.get("method"), dict) else [(k,) for k in TOP]
        path = rng.choice(paths)
        try:
            op = rng.random()
            if op < 0.12:
                _set(m, path, None, delete=True)
            elif op < 0.2 and isinstance(m.get("layers"), list) and m["layers"]:
                m["layers"].append(copy.deepcopy(rng.choice(m["layers"])))  # a duplicated layer name
            else:
                _set(m, path, copy.deepcopy(rng.choice(NASTY)))
        except (KeyError, IndexError, TypeError):
            pass
    return m


# ---------------------------------------------------------------------------------------------- tables

def mutate_table(table: str, t: pa.Table, rng: random.Random) -> tuple[pa.Table | bytes, str | None, str]:
    """(damaged part, label, what was done). Labels follow the documented rules for each kind of damage."""
    n = t.num_rows
    i = rng.randrange(n)
    cols = t.column_names

    def setcol(name: str, values, typ=None) -> pa.Table:
        arr = pa.array(values, type=typ if typ is not None else t.schema.field(name).type)
        return t.set_column(cols.index(name), name, arr)

    def cell(name: str, value) -> pa.Table:
        vals = t[name].to_pylist()
        vals[i] = value
        return setcol(name, vals)

    num = [c for c in cols if pa.types.is_floating(t.schema.field(c).type)]
    ints = [c for c in cols if pa.types.is_integer(t.schema.field(c).type)]
    choice = rng.randrange(17)
    if choice == 0:
        c = rng.choice(cols)
        same = pa.types.is_string(t.schema.field(c).type)
        return setcol(c, [str(v) for v in t[c].to_pylist()], pa.string()), "valid" if same else "invalid", \
            f"{c} as strings"
    if choice == 1:
        c = rng.choice(cols)
        # eval_f1/eval_mcc were added after version 1 shipped: parts without them read as NaN (documented)
        label = "valid" if c in ("eval_f1", "eval_mcc") else "invalid"
        return t.remove_column(cols.index(c)), label, f"{c} dropped"
    if choice == 2:
        c = rng.choice(cols)
        vals = t[c].to_pylist()
        vals[i] = None
        return setcol(c, vals), "invalid", f"{c} null"
    if choice == 3 and table == "steps":
        steps = t["step"].to_pylist()
        steps[i] = steps[i - 1] if i else steps[1]
        return setcol("step", steps), "invalid", "duplicated step"
    if choice == 4 and table == "steps" and n > 2:
        # the last row may go (a shorter run); any other leaves a gap
        return t.filter(pa.array([k != i for k in range(n)])), "invalid" if i < n - 1 else None, "row removed"
    if choice == 5 and table == "steps":
        c = rng.choice([c for c in num if c.startswith("flops_") or c in ("loss", "lr", "density")])
        return cell(c, rng.choice([float("nan"), float("inf"), float("-inf")])), "invalid", f"{c} non-finite"
    if choice == 6 and table == "steps":
        c = rng.choice([c for c in num if c.startswith("flops_") or c in ("lr", "wall_s")])
        return cell(c, -rng.choice([1.0, 1e-3, 1e30])), "invalid", f"{c} negative"
    if choice == 7 and table == "patterns":
        return cell("density", rng.choice([1.7, 0.0, -0.1, float("nan"), 2.0])), "invalid", "density out of range"
    if choice == 8 and table == "patterns":
        return cell("nnz", t["nnz"][i].as_py() + rng.choice([1, -1, 1000])), "invalid", "nnz != density x size"
    if choice == 9 and table == "patterns":
        c = rng.choice(["row_nnz_hist", "col_nnz_hist"])
        h = t[c][i].as_py()
        h2 = rng.choice([h[:-1], h + [0], [], [v + 1 for v in h]])
        return cell(c, h2), "invalid", f"{c} damaged"
    if choice == 10 and table == "patterns":
        c = rng.choice(["block4_frac", "nm_2_4_frac", "input_zero_frac", "row_nnz_max"])
        bad = {"row_nnz_max": float(t["cols"][i].as_py() + 1)}.get(c, rng.choice([1.5, -0.2, float("inf")]))
        return cell(c, bad), "invalid", f"{c} out of range"
    if choice == 11 and table == "patterns":
        return cell("layer", "not.a.layer"), "invalid", "unknown layer"
    if choice == 12 and ints:
        c = rng.choice(ints)
        return setcol(c, t[c].to_pylist(), pa.int32()), "valid", f"{c} as int32"
    if choice == 13:
        return t.append_column("an_extra_column", pa.array([1.0] * n)), "valid", "extra column"
    if choice == 14:
        c = rng.choice(num) if num else rng.choice(cols)
        return setcol(c, t[c].to_pylist(), pa.float32()) if c in num else t, None, f"{c} as float32"
    if choice == 15:
        import io

        import pyarrow.parquet as pq
        buf = io.BytesIO()
        pq.write_table(t, buf)
        data = bytearray(buf.getvalue())
        if rng.random() < 0.5:
            data = data[: rng.randrange(len(data))]
            return bytes(data), "invalid", "truncated file"
        for _ in range(rng.randrange(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data), None, "bytes flipped"
    c = rng.choice(cols)
    vals = t[c].to_pylist()
    pool = [0, -1, 1, 10 ** 15, 0.5, float("nan"), True, "x"]
    try:
        vals[i] = rng.choice(pool)
        return setcol(c, vals), None, f"{c} random cell"
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        return t, "valid", "unchanged"


# ---------------------------------------------------------------------------------------------- profiles

_QUANTITY_BAD = ["1e-300 FLOP/s", "-5 GB/s", "nan TFLOP/s", "inf FLOP/s", "1e400 B", "0 FLOP/s", "1e30 TFLOP/s",
                 "5 furlongs", "TFLOP/s", "1e-300 s", "true"]
#: "key: <number> <unit>" (a space before the unit: "2.13.0+cpu" is a version string, not a quantity)
_QUANTITY_LINE = __import__("re").compile(r"^\s*[\w.+-]+:\s*[-+]?[0-9][0-9.eE+-]*\s+[A-Za-z/]+\s*$")
#: top-level sections whose values are free-form text (provenance), where nothing is parsed as a quantity
_FREE_FORM = ("sources", "assumptions", "fitted", "description")


def _section(lines: list[str], k: int) -> str:
    for ln in reversed(lines[: k + 1]):
        if ln and not ln[0].isspace() and ":" in ln and not ln.startswith(("#", "-")):
            return ln.split(":", 1)[0]
    return ""

_SCALAR = [True, False, None, [], {}, "x", 0, -1, 1.5, "nan", "1e999", "!!python/object:os.system", 2 ** 70]


def yaml_duplicates(text: str) -> bool:
    """Whether some mapping in ``text`` holds a key twice (read with yaml.compose, node by node)."""
    def walk(node) -> bool:
        if isinstance(node, yaml.MappingNode):
            keys = [k.value for k, _ in node.value if isinstance(k, yaml.ScalarNode)]
            if len(keys) != len(set(keys)):
                return True
            return any(walk(v) for _, v in node.value)
        if isinstance(node, yaml.SequenceNode):
            return any(walk(v) for v in node.value)
        return False
    try:
        return walk(yaml.compose(text, Loader=yaml.SafeLoader))
    except Exception:
        return False


def mutate_profile(text: str, rng: random.Random) -> tuple[str | bytes, str | None, str]:
    lines = text.splitlines()
    choice = rng.randrange(8)
    if choice == 0:  # duplicate a key line in place
        keyed = [k for k, ln in enumerate(lines) if ln.strip() and not ln.lstrip().startswith(("#", "-"))
                 and ":" in ln]
        k = rng.choice(keyed)
        out = "\n".join(lines[: k + 1] + [lines[k]] + lines[k + 1:]) + "\n"
        return out, "invalid" if yaml_duplicates(out) else None, "duplicated key line"
    if choice == 1:  # a quantity made absurd (rates, sizes, times written with units)
        qty = [k for k, ln in enumerate(lines) if _QUANTITY_LINE.match(ln) and _section(lines, k) not in _FREE_FORM]
        if qty:
            k = rng.choice(qty)
            key = lines[k].split(":", 1)[0]
            bad = rng.choice(_QUANTITY_BAD)
            lines[k] = f"{key}: {bad}"
            return "\n".join(lines) + "\n", "invalid", f"quantity {key.strip()} = {bad}"
    if choice == 2:  # any value replaced
        keyed = [k for k, ln in enumerate(lines) if ":" in ln and not ln.lstrip().startswith("#")]
        k = rng.choice(keyed)
        key = lines[k].split(":", 1)[0]
        lines[k] = f"{key}: {rng.choice(_SCALAR)!r}" if rng.random() < 0.5 else f"{key}: {rng.choice(_SCALAR)}"
        return "\n".join(lines) + "\n", None, f"value of {key.strip()} replaced"
    if choice == 3 and len(lines) > 2:
        k = rng.randrange(len(lines))
        return "\n".join(lines[:k] + lines[k + 1:]) + "\n", None, "line deleted"
    if choice == 4:
        data = bytearray(text.encode())
        for _ in range(rng.randrange(1, 6)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        return bytes(data), None, "bytes flipped"
    if choice == 5:
        if rng.random() < 0.3:  # a cut that only drops trailing notes may still be a whole profile
            return text[: rng.randrange(len(text))], None, "truncated"
        return rng.choice(["[" * 3000 + "]" * 3000, "a: &a [*a]", "!!python/object/apply:os.system ['true']\n",
                           "", "- 1\n- 2\n", "{" * 5000 + "}" * 5000]), "invalid", "not a profile"
    if choice == 6:
        return text.encode("utf-16"), "invalid", "not UTF-8"
    k = rng.randrange(len(lines))
    lines.insert(k, lines[k].split(":", 1)[0] + "_unknown_key: 1" if ":" in lines[k] else "junk")
    return "\n".join(lines) + "\n", None, "key inserted"


def jsonable(m: Any) -> Any:
    """``m`` with numpy scalars turned into Python ones (json.dumps of a mutated manifest)."""
    if isinstance(m, dict):
        return {k: jsonable(v) for k, v in m.items()}
    if isinstance(m, list):
        return [jsonable(v) for v in m]
    if isinstance(m, np.generic):
        return m.item()
    return m
