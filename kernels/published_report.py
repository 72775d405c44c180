"""Console tables for ``accelsim validate --published`` (rich)."""
from __future__ import annotations

from rich.console import Console
from rich.table import Table


def _fmt(stats: dict) -> tuple[str, str, str]:
    if not stats.get("n"):
        return "0", "-", "-"
    return str(stats["n"]), f"{stats['median_abs_log_err']:.3f}", f"{stats['within_1.35x']:.0%}"


def print_published(report: dict, console: Console | None = None) -> None:
    console = console or Console()
    table = Table(title=f"published measurements: predicted vs published speedup (within {report['within_factor']}x)")
    for col in ("profile", "family (pattern @ path)", "points", "median |log err|", "within", "no path"):
        table.add_column(col)
    for prof, rep in report["profiles"].items():
        n, med, within = _fmt(rep)
        table.add_row(f"[bold]{prof}[/]", "all", n, med, within, str(rep.get("no_path", 0)))
        for fam, stats in rep["families"].items():
            table.add_row("", fam, *_fmt(stats), str(stats.get("no_path", 0)))
    console.print(table)
    n, med, within = _fmt(report["overall"])
    console.print(f"overall (current software): {n} points, median |log err| {med}, "
                  f"within {report['within_factor']}x: {within}")
    n, med, within = _fmt(report.get("superseded", {}))
    if n != "0":
        console.print(f"superseded rows (prototypes, since-fixed set-up, misbuilt; not fitted): {n} points, "
                      f"median |log err| {med}, within: {within}")
    for prof, rep in report["profiles"].items():
        if rep.get("unvalidated"):
            console.print(f"{prof}: unvalidated, {rep['unvalidated']}")
            continue
        worst = ", ".join(f"{w['id']} {w['predicted']:.2f} vs {w['published']:.2f}" for w in rep["worst"][:3])
        if worst:
            console.print(f"{prof} worst: {worst}")
        if rep["not_predicted"]:
            console.print(f"{prof}: {len(rep['not_predicted'])} whole-model/step rows not predicted "
                          f"({rep['not_predicted'][0]['why']})")


def print_fitted(profile, console: Console | None = None) -> None:
    """A profile's ``fitted:`` provenance: for a fit to the published dataset, each sparse path with the
    dataset rows it was fitted to (id, published speedup, read from where); any other fit as written."""
    console = console or Console()
    fitted = profile.fitted or {}
    paths = fitted.get("paths") if isinstance(fitted, dict) else None
    if not (isinstance(paths, dict) and all(isinstance(v, dict) and "rows" in v for v in paths.values())):
        console.print(f"[cyan]fitted[/]: {fitted}")
        return
    from accelsim.kernels.published import load_points

    by_id = {p.id: p for p in load_points()}
    held = fitted.get("held_out", {})
    console.print(f"[cyan]fitted[/] to {fitted.get('data')} ({fitted.get('date')}): held-out "
                  f"({held.get('method')}, {held.get('n')} rows) median |log err| {held.get('median_abs_log_err')}, "
                  f"within 1.35x {held.get('within_1.35x')}")
    group = fitted.get("held_out_by_group")
    if isinstance(group, dict) and group.get("n"):
        n = group.get("groups")
        console.print(f"  held out by author group ({n} group{'' if n == 1 else 's'}): median |log err| "
                      f"{group.get('median_abs_log_err')}, within 1.35x {group.get('within_1.35x')}")
    table = Table(title=f"{profile.name}: dataset rows each sparse path was fitted to")
    for col in ("path", "row", "published", "dtype", "pattern", "where"):
        table.add_column(col, overflow="fold")
    for name, info in paths.items():
        for i, rid in enumerate(info["rows"]):
            p = by_id.get(rid)
            held_out = (f"; held out {info['held_out_median_abs_log_err']}, {info['held_out_within_1.35x']:.0%} of "
                        f"{info['held_out_n']} within 1.35x" if info.get("held_out_n") else "")
            label = f"{name} (in-sample {info.get('in_sample_median_abs_log_err')}{held_out})" if i == 0 else ""
            if p is None:
                table.add_row(label, rid, "?", "", "", "(row no longer in the dataset)")
                continue
            pat = p.pattern + (f"/b{p.block}" if p.block else "")
            table.add_row(label, rid, f"{p.speedup:.3g}x", p.dtype, f"{pat} d={p.density:.3g}", p.where)
    console.print(table)
