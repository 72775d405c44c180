"""The published-measurement dataset: schema, coverage, and the loader's one-line errors."""
import math

import pytest

from accelsim.errors import UserError
from accelsim.kernels.published import COLUMNS, load_points, summary


def test_bundled_dataset_validates_and_covers_the_issue():
    points = load_points()
    s = summary(points)
    assert s["points"] >= 60 and s["sources"] >= 8
    assert all(s["per_profile"].get(p, 0) >= 5 for p in ("gpu-a100", "ipu-gc200", "gpu-h100"))
    # families the issue asks for are present: unstructured, 2:4 and block, fp32 and half, and slowdowns
    fams = {(p.profile, p.pattern, p.dtype) for p in points}
    assert {("gpu-a100", "unstructured", "fp32"), ("gpu-a100", "2:4", "fp16"), ("gpu-a100", "block", "fp32"),
            ("ipu-gc200", "block", "fp16"), ("ipu-gc200", "unstructured", "fp32")} <= fams
    assert any(p.speedup < 1 for p in points if p.pattern == "2:4")
    for p in points:  # every row carries where it was read
        assert p.where and p.read
        if p.dense_s and p.sparse_s:
            assert abs(math.log(p.dense_s / p.sparse_s / p.speedup)) <= 0.03


def test_author_groups_name_sources_of_the_dataset():
    # a misspelt source in AUTHOR_GROUPS would silently become a group of its own in the by-group hold-out
    from accelsim.kernels.published import AUTHOR_GROUPS, author_group

    sources = {p.source for p in load_points()}
    members = [s for group in AUTHOR_GROUPS.values() for s in group]
    assert len(members) == len(set(members)) and set(members) <= sources
    assert all(author_group(s) == g for g, group in AUTHOR_GROUPS.items() for s in group)
    assert author_group("a-source-no-group-lists") == "a-source-no-group-lists"


def _write(tmp_path, rows):
    f = tmp_path / "points.csv"
    f.write_text(",".join(COLUMNS) + "\n" + "\n".join(rows) + "\n")
    return f


GOOD = ("a,src,A100,gpu-a100,lib,current,2:4-sparse-tc,kernel_fwd,fp16,64,128,256,,,,2:4,,0.5,2e-3,1e-3,2.0,table,x,")


def test_loader_accepts_a_good_row(tmp_path):
    (p,) = load_points(_write(tmp_path, [GOOD]))
    assert p.tokens == 64 and p.block is None and p.speedup == 2.0


@pytest.mark.parametrize("bad, field", [
    (GOOD.replace(",0.5,2e-3", ",0.3,2e-3"), "row"),  # 2:4 at density 0.3
    (GOOD.replace("kernel_fwd", "kernel"), "op"),
    (GOOD.replace(",2.0,table", ",3.0,table"), "row"),  # speedup disagrees with the times
    (GOOD.replace(",2:4,,", ",block,,"), "row"),  # block without a size
    (GOOD.replace("fp16", "fp64"), "dtype"),
    (GOOD.replace(",current,", ",old,"), "software"),
    (GOOD.replace(",256,,,,", ",256,bert-base,,,"), "row"),  # a model row needs batch and seq_len
    (GOOD.replace(",256,,,,", ",256,resnet-50,8,224,"), "row"),  # a model the validator cannot build
])
def test_loader_names_the_bad_field(tmp_path, bad, field):
    with pytest.raises(UserError) as err:
        load_points(_write(tmp_path, [bad]))
    msg = str(err.value)
    assert "points.csv" in msg and f"field '{field}'" in msg and "line 2" in msg and "\n" not in msg


def test_loader_refuses_duplicates_and_wrong_header(tmp_path):
    with pytest.raises(UserError, match="duplicate id"):
        load_points(_write(tmp_path, [GOOD, GOOD]))
    f = tmp_path / "bad.csv"
    f.write_text("id,source\n")
    with pytest.raises(UserError, match="expected the columns"):
        load_points(f)
    with pytest.raises(UserError, match="cannot read"):
        load_points(tmp_path / "missing.csv")


def test_quansight_figure_rows_are_the_digitizer_readings():
    """Every row read from the Quansight BSR figures is the reading benchmarks/published/digitize_quansight.py
    derives from its recorded pixel rows (so a figure number can be re-derived, never typed in)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "published" / "digitize_quansight.py"
    spec = importlib.util.spec_from_file_location("digitize_quansight", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    readings = mod.readings()
    rows = [p for p in load_points() if p.source == "quansight-bsr-blog" and p.read == "figure"]
    assert len(rows) >= 30
    for p in rows:
        assert p.speedup == readings[(p.dtype, p.block, round(100 * (1 - p.density)))], p.id
        assert p.tokens == p.in_features == p.out_features == 4096 and p.dispatch == "eager"
    # the reading keeps the post's text: block 64 crosses 1x at 60 % sparsity in float16, block 16 only at 99 %
    assert readings[("fp16", 64, 50)] < 1 < readings[("fp16", 64, 60)]
    assert readings[("fp16", 16, 95)] < 1 < readings[("fp16", 16, 99)]
    assert readings[("fp32", 16, 60)] < 1 < readings[("fp32", 16, 70)]


def test_slidesparse_rows_are_what_the_extractor_takes_from_the_results_files(tmp_path):
    """benchmarks/published/extract_slidesparse.py copies the source's latencies (no rounding beyond 4 digits of
    the ratio) and keeps only its declared grid; the committed rows match its output format and grid."""
    import importlib.util
    import subprocess
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "published" / "extract_slidesparse.py"
    spec = importlib.util.spec_from_file_location("extract_slidesparse", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    # a stand-in of the source repository at the pinned commit, holding two of its files with one kept and one
    # dropped row each
    repo = tmp_path / "vllmbench"
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    header = "M,N,K,cuBLAS,cuSPARSE_2_4,cuSPARSE_2_6\n"
    files = {f"{mod.BASE}/{gpu}/latency/{dt}/latency_{name}.csv": header + body
             for gpu, dt, *_ in mod.RUNS
             for name, body in ((mod.MODEL, "64,3584,3584,23.736,20.541,23.4\n128,3584,3584,32.2,24.2,29.7\n"),
                                ("SQUARE", "4096,4096,4096,589.722,326.083,473.6\n2048,2048,2048,74.4,68.8,87.9\n"))}
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    pinned, mod.COMMIT = mod.COMMIT, head
    rows = mod.rows(str(repo))
    assert len(rows) == 2 * len(mod.RUNS)  # M = 128 and the 2048 cube are not on the grid
    first = rows[0]
    assert (first["tokens"], first["in_features"], first["out_features"]) == (64, 3584, 3584)
    assert float(first["speedup"]) == pytest.approx(23.736 / 20.541, rel=1e-3)
    assert float(first["dense_s"]) == pytest.approx(23.736e-6)
    committed = [p for p in load_points() if p.source == "slidesparse-kernels"]
    assert len(committed) == len(mod.RUNS) * (4 * len(mod.MODEL_M) + len(mod.SQUARES))
    for p in committed:
        assert p.pattern == "2:4" and p.density == 0.5 and p.read == "results-file" and not p.dispatch
        assert p.tokens in (*mod.MODEL_M, *mod.SQUARES) and f"vllmbench@{pinned[:8]} " in p.where
