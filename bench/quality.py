"""Quality of the defaults and of tune, in one run: the figures of BENCHMARKS.md section 7.

* the sample by tag (exact-id, paraphrase, mixed, out-of-domain), each mode's defaults, and
  hybrid without the BM25 floor for contrast;
* cranfield and msmarco-5k: each mode's defaults, hybrid without the floor, and hybrid with
  each score-based fusion;
* the judged multilingual sets (tests/data/multilingual): each mode's defaults, BM25 with the
  English analyzer, and plain bm25s (no stemming, no stopwords);
* tune: held-out nDCG@10 against the best default mode on cranfield, msmarco-5k and 35
  queries sampled from cranfield, for five fold seeds each, with the bootstrap interval of the
  gain.

Run: ``python bench/quality.py --out bench/results/quality.md`` (collections are built once
into ``--home``, default ``$BENCH_WORKDIR/quality-home``; about ten minutes on two cores).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import DEFAULT_WORKDIR, ROOT, SHARED_DATA, machine, use_workdir

MULTILINGUAL = ROOT / "tests" / "data" / "multilingual"
SETS = {
    "sample": ROOT / "sample_data",
    "cranfield": SHARED_DATA / "cranfield",
    "msmarco-5k": SHARED_DATA / "msmarco-5k",
    **{lang: MULTILINGUAL / lang for lang in ("de", "es", "ru", "ar")},
}
MODES = ("vector", "bm25", "hybrid")


def collection_for(name: str, home: Path, language: str = "auto"):
    from search_core.collection import BuildOptions, build_collection, open_collection

    label = name if language == "auto" else f"{name}-{language}"
    try:
        return open_collection(label, home=home)
    except Exception:
        return build_collection(label, SETS[name], BuildOptions(language=language), home=home)


def ndcg(collection, folder: Path, params, *, by_tag: bool = False):
    from search_core.evaluation import evaluate_collection, load_qrels, load_queries

    query_set = load_queries(folder / "queries.jsonl")
    qrels = load_qrels(folder / "qrels" / "test.tsv")
    report = evaluate_collection(collection, query_set, qrels, params)
    if by_tag:
        return report.metrics["ndcg@10"], report.by_tag
    return report.metrics["ndcg@10"]


def quality_tables(home: Path) -> list[str]:
    from search_core.baselines import plain_bm25s_run
    from search_core.evaluation import evaluate_run, load_qrels, load_queries
    from search_core.search import SearchParams

    lines = ["## Sample by tag (nDCG@10; out-of-domain: share of queries with no result)", ""]
    sample = collection_for("sample", home)
    variants = {mode: SearchParams(mode=mode) for mode in MODES}
    variants["hybrid, no BM25 floor"] = SearchParams(lexical_margin=-2.0)
    lines += ["| setting | all | exact-id | paraphrase | mixed | out-of-domain empty |"]
    lines += ["|---|---|---|---|---|---|"]
    for label, params in variants.items():
        overall, tags = ndcg(sample, SETS["sample"], params, by_tag=True)
        cells = [f"{tags[t]['ndcg@10']:.3f}" for t in ("exact-id", "paraphrase", "mixed")]
        empty = tags["out-of-domain"]["empty_share"]
        lines.append(f"| {label} | {overall:.3f} | " + " | ".join(cells) + f" | {empty:.0%} |")

    lines += ["", "## Shared judged collections (nDCG@10)", ""]
    columns = {
        **{mode: SearchParams(mode=mode) for mode in MODES},
        "hybrid, no floor": SearchParams(lexical_margin=-2.0),
        "hybrid, minmax": SearchParams(fusion="minmax"),
        "hybrid, zscore": SearchParams(fusion="zscore"),
    }
    lines += ["| collection | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name in ("cranfield", "msmarco-5k"):
        if not (SETS[name] / "corpus.jsonl").is_file():
            lines.append(f"| {name} | " + " | ".join("absent" for _ in columns) + " |")
            continue
        collection = collection_for(name, home)
        scores = [ndcg(collection, SETS[name], params) for params in columns.values()]
        lines.append(f"| {name} | " + " | ".join(f"{s:.3f}" for s in scores) + " |")

    lines += ["", "## Multilingual judged sets (nDCG@10)", ""]
    lines += [
        "| set | analyzer | vector | bm25 | hybrid | BM25, English analyzer | plain bm25s |",
        "|---|---|---|---|---|---|---|",
    ]
    for lang in ("de", "es", "ru", "ar"):
        collection = collection_for(lang, home)
        english = collection_for(lang, home, language="en")
        folder = SETS[lang]
        scores = [ndcg(collection, folder, SearchParams(mode=mode)) for mode in MODES]
        scores.append(ndcg(english, folder, SearchParams(mode="bm25")))
        queries = load_queries(folder / "queries.jsonl").queries
        doc_ids = [chunk.doc_id for chunk in collection.chunks]
        run = plain_bm25s_run(collection.indexed_texts(), doc_ids, queries)
        qrels = load_qrels(folder / "qrels" / "test.tsv")
        scores.append(evaluate_run(qrels, run, ["ndcg@10"]).metrics["ndcg@10"])
        analyzer = collection.analyzer.name
        lines.append(f"| {lang} | {analyzer} | " + " | ".join(f"{s:.3f}" for s in scores) + " |")
    return lines


def tune_table(home: Path, seeds: int) -> list[str]:
    from search_core.evaluation import load_qrels, load_queries
    from search_core.tuning import tune

    lines = ["", "## tune: held-out nDCG@10 against the best default mode", ""]
    lines += [
        "| set | seed | queries | grid | held-out | best default | gain | 95% interval "
        "| folds tuned | within 0.005 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, name, sample in (
        ("cranfield", "cranfield", None),
        ("msmarco-5k", "msmarco-5k", None),
        ("cranfield, 35 queries", "cranfield", 35),
    ):
        if not (SETS[name] / "corpus.jsonl").is_file():
            continue
        collection = collection_for(name, home)
        all_queries = load_queries(SETS[name] / "queries.jsonl").queries
        qrels = load_qrels(SETS[name] / "qrels" / "test.tsv")
        for seed in range(seeds):
            queries = all_queries
            if sample:
                ids = sorted(all_queries)
                picks = np.random.default_rng(100 + seed).choice(len(ids), sample, replace=False)
                queries = {ids[i]: all_queries[ids[i]] for i in sorted(picks)}
            report = tune(collection, queries, qrels, seed=seed)
            best = report.defaults[report.best_default]
            low, high = report.gain_ci
            tuned = sum(not f.kept_default for f in report.folds)
            ok = "yes" if report.held_out >= best - 0.005 else "NO"
            lines.append(
                f"| {label} | {seed} | {report.queries} | {report.grid_size} | "
                f"{report.held_out:.4f} | {best:.4f} ({report.best_default}) | "
                f"{report.gain:+.4f} | {low:+.4f} to {high:+.4f} | {tuned} of "
                f"{len(report.folds)} | {ok} |"
            )
            print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", type=Path, default=DEFAULT_WORKDIR / "quality-home")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--skip-tune", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    use_workdir(args.workdir)
    started = time.perf_counter()
    lines = [f"Machine: {machine()}", ""]
    lines += quality_tables(args.home)
    print("\n".join(lines), flush=True)
    if not args.skip_tune:
        lines += tune_table(args.home, args.seeds)
    lines += ["", f"Took {time.perf_counter() - started:.0f} s."]
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
