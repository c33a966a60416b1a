"""The relevance lab's commands: ``judge``, ``compare``, ``report``, ``sweep`` and ``tune``.

:func:`add_lab_commands` registers them on the ``search-explorer`` parser. As in
:mod:`search_core.cli`, every command prints plain text, or JSON with ``--json``, imports what
it needs when it runs, and leaves errors to ``cli.main`` (one line, exit status 2).

Judged queries come from ``--queries`` and ``--qrels`` files, or else from a judgment set
stored with the collection (``--set``, default ``default``; fill it with ``judge import``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .collection import Collection
    from .evaluation import Qrels, QuerySet, RunDict
    from .lab import Comparison
    from .search import SearchParams

__all__ = ["add_lab_commands"]

SWEEP_KINDS = ("threshold", "fusion", "ann", "health")


def _print_json(value: Any) -> None:
    from .cli import _print_json as print_json

    print_json(value)


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}" if value.is_integer() else f"{value:.4f}"
    if value is None:
        return "-"
    return str(value)


def _print_table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> None:
    """Rows as aligned plain-text columns."""
    if not rows:
        print("(no rows)")
        return
    columns = columns or list(rows[0])
    cells = [[_format(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)))
    for line in cells:
        print("  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)))


def _judged_queries(args: argparse.Namespace) -> tuple[QuerySet, Qrels]:
    """Queries and judgments from ``--queries``/``--qrels``, or from the stored set."""
    from .evaluation import load_qrels, load_queries
    from .judgments import open_judgments

    if args.queries or args.qrels:
        if not (args.queries and args.qrels):
            raise ValueError("give both --queries and --qrels, or neither to use a stored set")
        return load_queries(args.queries), load_qrels(args.qrels)
    set_name = args.set or "default"
    store = open_judgments(args.name, set_name, args.home)
    adjudicated_first = not args.ignore_adjudicated
    query_set = store.query_set()
    qrels = store.qrels(args.rule, adjudicated_first=adjudicated_first)
    if not query_set.queries or not qrels:
        raise ValueError(
            f"judgment set {set_name!r} of {args.name!r} is empty: give --queries and --qrels, "
            f"or fill it with: search-explorer judge import {args.name} beir FOLDER"
        )
    return query_set, qrels


def _config(args: argparse.Namespace, value: str) -> tuple[str, SearchParams]:
    """A ``--config``: a JSON file, or the name of a configuration saved with the collection."""
    from .lab import list_configs, load_config, read_config_file

    path = Path(value)
    if path.is_file():
        return path.stem, read_config_file(path)
    if value in list_configs(args.name, args.home):
        return value, load_config(args.name, value, args.home)
    raise ValueError(
        f"--config {value!r} is neither a file nor a configuration saved with {args.name!r}"
    )


def _configs(args: argparse.Namespace) -> dict[str, SearchParams]:
    """Every ``--config`` by its label (a second of the same name gets ``-2``)."""
    configs: dict[str, SearchParams] = {}
    for value in args.config:
        label, params = _config(args, value)
        configs[_unique(label, configs)] = params
    return configs


def _rule(args: argparse.Namespace) -> str:
    """How several judges' grades were combined, in words; empty for judgments from files."""
    if args.queries or args.qrels:
        return ""
    from .combining import describe_rule

    return describe_rule(args.rule, adjudicated_first=not args.ignore_adjudicated)


def _compare(
    args: argparse.Namespace, qrels: Qrels, runs: dict[str, RunDict], queries: dict[str, str]
) -> Comparison:
    """The runs compared as the options say (``-k``, ``--test``, ``--max-p``, the rule)."""
    from .lab import compare

    return compare(
        qrels,
        runs,
        k=args.k,
        queries=queries,
        stat_test=args.test,
        max_p=args.max_p,
        rule=_rule(args),
    )


def _add_judged_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--queries", default=None, help="BEIR queries.jsonl or TREC topics TSV")
    parser.add_argument("--qrels", default=None, help="BEIR qrels TSV or TREC qrels")
    parser.add_argument(
        "--set", default=None, help="stored judgment set (default: default), used without --queries"
    )
    _add_rule_options(parser)


def _add_config_option(parser: argparse.ArgumentParser, more: str) -> None:
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="A.json",
        help=f"a configuration: SearchParams JSON file or saved name (repeat{more})",
    )


def _add_rule_options(parser: argparse.ArgumentParser) -> None:
    from .combining import COMBINING_RULES, DEFAULT_RULE

    parser.add_argument(
        "--rule",
        choices=tuple(COMBINING_RULES),
        default=DEFAULT_RULE,
        help="how several judges' grades of a document combine into one (stored sets)",
    )
    parser.add_argument(
        "--ignore-adjudicated",
        action="store_true",
        help="apply the rule even where a lead set a final grade",
    )


# --------------------------------------------------------------------------- judge


def cmd_judge_import(args: argparse.Namespace) -> int:
    from .judgments import import_judgments, open_judgments

    store = open_judgments(args.name, args.set, args.home)
    report = import_judgments(store, args.format, args.path, queries=args.topics, judge=args.judge)
    if args.json:
        _print_json(
            {
                "set": args.set,
                "queries": report.queries,
                "judgments": report.judgments,
                "unchanged_queries": report.unchanged_queries,
                "unchanged_judgments": report.unchanged_judgments,
            }
        )
        return 0
    print(f"{report.message()} Set {args.set!r} of {args.name!r}, from {report.source}.")
    return 0


def cmd_judge_export(args: argparse.Namespace) -> int:
    from .combining import describe_rule
    from .judgments import export_judgments, open_judgments

    if args.per_judge and args.format != "csv":
        raise ValueError("--per-judge writes a CSV with a judge column: use the csv format")
    fmt = "judges-csv" if args.per_judge else args.format
    count = export_judgments(
        open_judgments(args.name, args.set, args.home),
        fmt,
        args.output,
        rule=args.rule,
        adjudicated_first=not args.ignore_adjudicated,
    )
    if args.json:
        _print_json({"set": args.set, "rows": count, "format": fmt, "output": args.output})
        return 0
    rule = describe_rule(args.rule, adjudicated_first=not args.ignore_adjudicated)
    what = "every judge's grade" if args.per_judge else f"combined grades ({rule})"
    print(f"wrote {count} rows of set {args.set!r} to {args.output}: {what}")
    return 0


def cmd_judge_pool(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from .collection import open_collection
    from .judgments import open_judgments
    from .pooling import pool_configurations, progress

    if not args.config:
        raise ValueError("judge pool needs configurations: --config A.json --config B.json")
    collection = open_collection(args.name, args.home)
    store = open_judgments(args.name, args.set, args.home)
    configs = _configs(args)
    with tqdm(desc="pool", file=sys.stderr, leave=False, disable=None) as bar:

        def step(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        pool = pool_configurations(
            collection,
            store,
            args.pool,
            configs,
            depth=args.depth,
            replicates=args.replicates,
            created_by=args.judge,
            progress=step,
        )
    done = progress(store, pool.name)
    if args.json:
        _print_json(
            {
                "pool": pool.name,
                "set": args.set,
                "pairs": len(pool.pairs),
                "queries": len({qid for qid, _ in pool.pairs}),
                "depth": pool.depth,
                "replicates": pool.replicates,
                "sources": list(pool.sources),
                "grades_needed": done.needed,
                "grades_given": done.given,
            }
        )
        return 0
    print(
        f"pool {pool.name!r} of set {args.set!r}: {len(pool.pairs)} documents to judge over "
        f"{len({qid for qid, _ in pool.pairs})} queries (top {pool.depth} of "
        f"{', '.join(pool.sources)}), {pool.replicates} grade(s) each; "
        f"{done.given} of {done.needed} grades already given"
    )
    return 0


def cmd_judge_agreement(args: argparse.Namespace) -> int:
    from .agreement import agreement
    from .judgments import open_judgments

    store = open_judgments(args.name, args.set, args.home)
    judges = [j.strip() for j in args.judges.split(",") if j.strip()] if args.judges else None
    report = agreement(store.judgments(), judges=judges)
    if args.json:
        _print_json(report.to_dict())
        return 0
    if len(report.judges) < 2:
        print(f"set {args.set!r} has {len(report.judges)} judge(s): agreement needs two or more")
        return 0
    alpha = "n/a" if report.alpha is None else f"{report.alpha:.4f}"
    print(
        f"{len(report.judges)} judges, {report.units} documents graded by two or more; "
        f"Krippendorff's alpha (ordinal) {alpha}"
    )
    _print_table(
        [
            {
                "judge_a": p.judge_a,
                "judge_b": p.judge_b,
                "both_graded": p.common,
                "weighted_kappa": p.kappa,
                "raw_agreement": p.raw,
            }
            for p in report.pairs
        ]
    )
    if report.disagreements:
        print(f"\nwidest disagreements (of {len(report.disagreements)}):")
        for item in report.disagreements[: args.top]:
            grades = ", ".join(f"{judge} {grade}" for judge, grade in item.grades.items())
            print(f"  {item.query_id:>10}  {item.doc_id}  spread {item.spread}: {grades}")
    return 0


def cmd_judge_add(args: argparse.Namespace) -> int:
    from .judgments import open_judgments

    store = open_judgments(args.name, args.set, args.home)
    if args.query:
        store.add_query(args.query_id, args.query)
    judgment = store.judge(args.query_id, args.doc_id, args.grade, args.judge)
    if args.json:
        from dataclasses import asdict

        _print_json(asdict(judgment))
        return 0
    print(f"query {judgment.query_id}, document {judgment.doc_id}: grade {judgment.grade}")
    return 0


# --------------------------------------------------------------------------- compare


def cmd_compare(args: argparse.Namespace) -> int:
    from .collection import open_collection
    from .evaluation import run_configurations
    from .lab import evaluate, load_snapshot, save_snapshot, side_by_side

    if len(args.config) + len(args.snapshot) < 2:
        raise ValueError("compare needs at least two runs: --config A.json --config B.json")
    collection = open_collection(args.name, args.home)
    query_set, qrels = _judged_queries(args)
    configs = _configs(args)
    # each query is embedded once for all the configurations
    runs = run_configurations(collection, query_set.queries, configs)
    if args.save:
        for label, run in runs.items():
            report = evaluate(qrels, run, args.k, queries=query_set.queries)
            snapshot = save_snapshot(collection, label, run, report, configs[label], home=args.home)
            print(f"kept run {label!r} as snapshot {snapshot.snapshot_id}", file=sys.stderr)
    for snapshot_id in args.snapshot:
        snapshot = load_snapshot(args.name, snapshot_id, args.home)
        runs[_unique(snapshot.name, runs)] = snapshot.run
    comparison = _compare(args, qrels, runs, query_set.queries)
    view = None
    if args.query:
        view = side_by_side(
            qrels, runs, args.query, k=args.k, queries=query_set.queries, titles=collection.titles
        )
    if args.json:
        payload = comparison.to_dict()
        if view is not None:
            payload["side_by_side"] = {
                "query_id": view.query_id,
                "query": view.query,
                "rows": view.rows(),
            }
        _print_json(payload)
        return 0
    _print_comparison(comparison)
    if view is not None:
        print(f"\nquery {view.query_id}: {view.query}")
        _print_table(view.rows())
    return 0


def _unique(label: str, taken: dict[str, Any]) -> str:
    candidate, n = label, 2
    while candidate in taken:
        candidate, n = f"{label}-{n}", n + 1
    return candidate


def _print_comparison(comparison: Any) -> None:
    _print_table(list(comparison.table))
    metric = comparison.metric
    print(f"\n{metric} with its bootstrap 95% interval over queries:")
    for name in comparison.names:
        low, high = comparison.intervals[name][metric]
        mean = comparison.reports[name].metrics[metric]
        coverage = comparison.reports[name].coverage
        print(f"  {name}: {mean:.4f} [{low:.4f}, {high:.4f}]; judged@{comparison.k} {coverage:.1%}")
    if comparison.rule:
        print(f"grades of several judges combined: {comparison.rule}")
    for name in comparison.low_coverage:
        coverage = comparison.reports[name].coverage
        print(
            f"warning: only {coverage:.1%} of the top {comparison.k} results of {name} are "
            "judged, so its metrics undercount it; pool them for judging with: search-explorer "
            f"judge pool COLLECTION --config {name} --depth {comparison.k}",
            file=sys.stderr,
        )
    baseline = comparison.names[0]
    test = f"{comparison.stat_test} test, p < {comparison.max_p}"
    print(f"\nagainst {baseline} on {metric} ({test}):")
    for name in comparison.names[1:]:
        wtl = comparison.wins_ties_losses[name]
        p = comparison.p_values[name][metric]
        low, high = comparison.difference_intervals[name][metric]
        verdict = "significant" if comparison.significant[name][metric] else "not significant"
        print(
            f"  {name}: {wtl['wins']} wins, {wtl['ties']} ties, {wtl['losses']} losses; "
            f"difference 95% interval [{low:+.4f}, {high:+.4f}]; p = {p:.4g} ({verdict})"
        )
    deltas = [
        (abs(row[f"delta:{name}"]), row, name)
        for row in comparison.per_query
        for name in comparison.names[1:]
        if row[f"delta:{name}"] != 0
    ]
    if deltas:
        print("\nlargest per-query changes:")
        for _, row, name in sorted(deltas, key=lambda item: -item[0])[:10]:
            print(
                f"  {row['query_id']:>10}  {name}: {row[f'delta:{name}']:+.4f}  "
                f"({row[baseline]:.4f} -> {row[name]:.4f})  {row['query'][:60]}"
            )


# --------------------------------------------------------------------------- report


def cmd_report(args: argparse.Namespace) -> int:
    from .collection import open_collection
    from .evaluation import run_configurations
    from .judgments import open_judgments
    from .report import build_report, write_report

    if len(args.config) < 2:
        raise ValueError(
            "report needs at least two configurations: --config A.json --config B.json"
        )
    if args.changed < 1:
        raise ValueError(f"--changed must be at least 1, got {args.changed}")
    collection = open_collection(args.name, args.home)
    query_set, qrels = _judged_queries(args)
    configs = _configs(args)
    if args.challenger is not None and args.challenger not in list(configs)[1:]:
        raise ValueError(
            f"--challenger {args.challenger!r} is not a configuration compared with the baseline "
            f"{next(iter(configs))!r}; valid: {', '.join(list(configs)[1:])}"
        )
    runs = run_configurations(collection, query_set.queries, configs)
    set_name, judges = "", []
    if not (args.queries or args.qrels):
        set_name = args.set or "default"
        judges = open_judgments(args.name, set_name, args.home).judges()
    comparison = _compare(args, qrels, runs, query_set.queries)
    report = build_report(
        collection,
        comparison,
        runs,
        qrels,
        query_set.queries,
        configs,
        judgment_set=set_name,
        judges=judges,
        changed=args.changed,
        challenger=args.challenger,
        title=args.title,
    )
    path = write_report(report, args.out)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


# --------------------------------------------------------------------------- sweep


def cmd_sweep(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from .collection import open_collection
    from .search import SearchParams
    from .sweeps import ann_health, ann_sweep, fusion_sweep, threshold_sweep

    collection = open_collection(args.name, args.home)
    if args.kind == "health":
        health = ann_health(collection, sample=args.sample, k=args.k)
        if args.json:
            _print_json(asdict(health))
            return 0
        print(
            f"{health.kind} index {health.params}: recall@{health.k} {health.recall:.4f} against "
            f"exact search on {health.sample} of its own chunks"
        )
        _print_table(
            list(health.memory),
            ["kind", "bytes_per_vector", "total_bytes", "current", "params", "note"],
        )
        return 0
    params = _config(args, args.config)[1] if args.config else SearchParams()
    if args.kind == "ann":
        query_set, qrels = (None, None)
        if args.queries or args.qrels or args.set:
            query_set, qrels = _judged_queries(args)
        result = ann_sweep(
            collection,
            query_set,
            qrels,
            values=[int(v) for v in args.values] if args.values else None,
            k=args.k,
            sample=args.sample,
        )
    else:
        query_set, qrels = _judged_queries(args)
        if args.kind == "threshold":
            thresholds = [float(v) for v in args.values] if args.values else None
            options: dict[str, Any] = {"thresholds": thresholds} if thresholds else {}
            result = threshold_sweep(collection, query_set, qrels, params, k=args.k, **options)
        else:
            options = {"rrf_ks": [float(v) for v in args.values]} if args.values else {}
            result = fusion_sweep(collection, query_set, qrels, params, k=args.k, **options)
    if args.json:
        _print_json(asdict(result))
        return 0
    counts = f"{result.queries} queries ({result.judged} judged)"
    print(f"{result.kind} sweep over {result.parameter}: {counts}")
    _print_table(list(result.rows))
    return 0


# --------------------------------------------------------------------------- tune


def cmd_tune(args: argparse.Namespace) -> int:
    import json

    from tqdm import tqdm

    from .collection import open_collection
    from .lab import save_config
    from .tuning import tune

    collection: Collection = open_collection(args.name, args.home)
    query_set, qrels = _judged_queries(args)
    with tqdm(desc="tune", file=sys.stderr, leave=False, disable=None) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        report = tune(
            collection, query_set, qrels, folds=args.folds, seed=args.seed, progress=progress
        )
    if args.save:
        save_config(args.name, args.save, report.chosen, args.home)
    if args.json:
        _print_json(report.to_dict())
        return 0
    print(json.dumps(report.chosen.to_dict(), indent=2))
    defaults = ", ".join(f"{mode} {score:.4f}" for mode, score in report.defaults.items())
    print(
        f"held-out nDCG@10 {report.held_out:.4f} ({args.folds}-fold cross-validation, "
        f"{report.queries} judged queries) vs default {report.best_default} "
        f"{report.defaults[report.best_default]:.4f} ({report.gain:+.4f}); defaults: {defaults}"
    )
    print(report.reason)
    if args.save:
        print(f"saved as configuration {args.save!r} of {args.name!r}")
    return 0


# --------------------------------------------------------------------------- parser


def add_lab_commands(subparsers: Any) -> None:
    """Register ``judge``, ``compare``, ``report``, ``sweep`` and ``tune`` on the parser.

    Args:
        subparsers: the object ``ArgumentParser.add_subparsers`` returned.
    """
    from .judgments import IMPORTERS
    from .lab import STAT_TESTS

    judge = subparsers.add_parser(
        "judge", help="import, export or add judgments; pool documents; measure agreement"
    )
    actions = judge.add_subparsers(dest="judge_command", required=True)

    p = actions.add_parser("import", help="import queries and judgments (BEIR, TREC or CSV)")
    p.add_argument("name", help="collection")
    p.add_argument("format", choices=tuple(IMPORTERS))
    p.add_argument("path", help="BEIR folder, TREC qrels file or CSV (query, doc_id, grade)")
    p.add_argument(
        "--topics", default=None, help="queries file for TREC qrels (id<TAB>text or JSONL)"
    )
    p.add_argument("--set", default="default", help="judgment set")
    p.add_argument("--judge", default="import", help="who judged, when the file does not say")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_judge_import)

    p = actions.add_parser(
        "export", help="export combined grades (TREC qrels or CSV) or every judge's (CSV)"
    )
    p.add_argument("name", help="collection")
    p.add_argument("format", choices=("trec", "csv"))
    p.add_argument("output", help="file to write")
    p.add_argument("--set", default="default", help="judgment set")
    p.add_argument(
        "--per-judge",
        action="store_true",
        help="every judge's grade, one row each, with a judge column (csv only)",
    )
    _add_rule_options(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_judge_export)

    p = actions.add_parser(
        "pool", help="pool the top documents of configurations for judging (judging session)"
    )
    p.add_argument("name", help="collection")
    _add_config_option(p, "")
    p.add_argument("--pool", default="round-1", help="the pool's name (replaced if it exists)")
    p.add_argument("--depth", type=int, default=10, help="documents per query from each")
    p.add_argument(
        "--replicates", type=int, default=1, help="grades each document needs (3 for agreement)"
    )
    p.add_argument("--judge", default="", help="who makes the pool")
    p.add_argument("--set", default="default", help="judgment set (its queries are run)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_judge_pool)

    p = actions.add_parser(
        "agreement", help="how far judges agree: weighted kappa per pair, alpha over all"
    )
    p.add_argument("name", help="collection")
    p.add_argument("--set", default="default", help="judgment set")
    p.add_argument("--judges", default=None, help="compare only these judges (a,b,c)")
    p.add_argument("--top", type=int, default=10, help="widest disagreements listed")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_judge_agreement)

    p = actions.add_parser("add", help="record one judgment (saved at once)")
    p.add_argument("name", help="collection")
    p.add_argument("query_id")
    p.add_argument("doc_id")
    p.add_argument(
        "grade", type=int, help="0 = not relevant, 1 = related, 2 = relevant, 3 = perfect"
    )
    p.add_argument("--query", default=None, help="the query's text, to add the query first")
    p.add_argument("--judge", default="", help="who judged")
    p.add_argument("--set", default="default", help="judgment set")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_judge_add)

    p = subparsers.add_parser(
        "compare", help="compare configurations or snapshots on judged queries"
    )
    p.add_argument("name", help="collection")
    _add_config_option(p, "; first = baseline")
    p.add_argument(
        "--snapshot", action="append", default=[], metavar="ID", help="a kept run (repeatable)"
    )
    _add_judged_options(p)
    p.add_argument("-k", type=int, default=10, help="metric cutoff")
    p.add_argument(
        "--query", default=None, metavar="QID", help="show this query's lists side by side"
    )
    p.add_argument(
        "--test", choices=tuple(STAT_TESTS), default="student", help="paired significance test"
    )
    p.add_argument("--max-p", type=float, default=0.05, help="significance level")
    p.add_argument(
        "--save", action="store_true", help="keep each configuration's run as a snapshot"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_compare)

    p = subparsers.add_parser(
        "report", help="compare configurations and write a self-contained HTML report"
    )
    p.add_argument("name", help="collection")
    _add_config_option(p, "; first = baseline")
    _add_judged_options(p)
    p.add_argument("-k", type=int, default=10, help="metric cutoff")
    p.add_argument(
        "--test", choices=tuple(STAT_TESTS), default="student", help="paired significance test"
    )
    p.add_argument("--max-p", type=float, default=0.05, help="significance level")
    p.add_argument(
        "--changed", type=int, default=5, help="most improved and most worsened queries shown"
    )
    p.add_argument(
        "--challenger",
        default=None,
        metavar="NAME",
        help="configuration whose changed queries are shown (default: the second)",
    )
    p.add_argument("--title", default="", help="the report's title")
    p.add_argument("--out", required=True, metavar="REPORT.html", help="HTML file to write")
    p.set_defaults(func=cmd_report)

    p = subparsers.add_parser("sweep", help="threshold, fusion or ANN sweep; ANN health")
    p.add_argument("name", help="collection")
    p.add_argument("kind", choices=SWEEP_KINDS)
    _add_judged_options(p)
    p.add_argument("--config", default=None, help="base configuration (JSON file or saved name)")
    p.add_argument(
        "--values",
        nargs="+",
        default=None,
        help="thresholds, rrf_k values or nprobe/efSearch values to try",
    )
    p.add_argument("-k", type=int, default=10, help="metric and recall cutoff")
    p.add_argument("--sample", type=int, default=200, help="chunks used as queries (ann, health)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_sweep)

    p = subparsers.add_parser("tune", help="find the best fusion, BM25 and threshold settings")
    p.add_argument("name", help="collection")
    _add_judged_options(p)
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds")
    p.add_argument("--seed", type=int, default=0, help="seed of the split into folds")
    p.add_argument("--save", default=None, metavar="CONFIG", help="save the chosen configuration")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_tune)
