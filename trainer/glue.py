"""Fine-tuning tasks: GLUE classification tasks (hub or local TSV files in GLUE's own format), the offline
default task built from the training corpus, and GLUE's metrics.

A task is a list of (text_a, text_b or None, label) examples per split. GLUE reports accuracy for most
tasks, accuracy and F1 of the positive class for MRPC and QQP, and the Matthews correlation for CoLA
(Wang et al. 2019, table 1); the first metric of a task is its headline metric.
"""
from __future__ import annotations

import csv
import os
import re
import socket
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from accelsim.errors import UserError, expect

Example = tuple[str, "str | None", int]

#: Offline default task: is sentence B the sentence after A in the same document, or one from another document?
DEFAULT_TASK = "corpus-pairs"


@dataclass(frozen=True)
class TaskSpec:
    name: str
    labels: int
    metrics: tuple[str, ...]  # GLUE's reported metrics, headline first
    hub: str  # config name of the hub's nyu-mll/glue dataset
    hub_text: tuple[str, ...]  # text columns of the hub dataset
    tsv_text: tuple[int, ...]  # column indices of the text fields in GLUE's TSV files
    tsv_label: int  # column index of the label (negative: from the end, MNLI has a varying column count)
    tsv_header: bool = True  # CoLA's train/dev files have no header row
    label_names: tuple[str, ...] = ()  # label strings in the TSV, in id order (empty: integer labels)
    dev: str = "dev"  # dev file stem (MNLI: dev_matched)
    hub_dev: str = "validation"


#: GLUE's classification tasks (STS-B is a regression task and is not supported). TSV layouts are those of
#: the files GLUE distributes (the glue_data download), label ids those of the hub's nyu-mll/glue.
TASKS: dict[str, TaskSpec] = {t.name: t for t in (
    TaskSpec("cola", 2, ("mcc",), "cola", ("sentence",), (3,), 1, tsv_header=False),
    TaskSpec("sst2", 2, ("accuracy",), "sst2", ("sentence",), (0,), 1),
    TaskSpec("mrpc", 2, ("f1", "accuracy"), "mrpc", ("sentence1", "sentence2"), (3, 4), 0),
    TaskSpec("qqp", 2, ("f1", "accuracy"), "qqp", ("question1", "question2"), (3, 4), 5),
    TaskSpec("mnli", 3, ("accuracy",), "mnli", ("premise", "hypothesis"), (8, 9), -1,
             label_names=("entailment", "neutral", "contradiction"), dev="dev_matched",
             hub_dev="validation_matched"),
    TaskSpec("qnli", 2, ("accuracy",), "qnli", ("question", "sentence"), (1, 2), 3,
             label_names=("entailment", "not_entailment")),
    TaskSpec("rte", 2, ("accuracy",), "rte", ("sentence1", "sentence2"), (1, 2), 3,
             label_names=("entailment", "not_entailment")),
    TaskSpec("wnli", 2, ("accuracy",), "wnli", ("sentence1", "sentence2"), (1, 2), 3),
    TaskSpec(DEFAULT_TASK, 2, ("accuracy", "f1"), "", (), (), 0),
)}
#: Directory names of the glue_data download, for --data pointing at the whole download.
_GLUE_DIRS = {"cola": "CoLA", "sst2": "SST-2", "mrpc": "MRPC", "qqp": "QQP", "mnli": "MNLI", "qnli": "QNLI",
              "rte": "RTE", "wnli": "WNLI"}


@dataclass
class TaskData:
    spec: TaskSpec
    train: list[Example]
    dev: list[Example]
    info: dict = field(default_factory=dict)  # source description for the manifest


def task_spec(name: str) -> TaskSpec:
    key = name.lower().replace("-", "") if name.lower() != DEFAULT_TASK else DEFAULT_TASK
    spec = TASKS.get(key)
    expect(spec is not None, f"unknown task {name!r}; expected one of {sorted(TASKS)} (STS-B, a regression "
           "task, is not supported)", field="--task")
    return spec


def load_task(name: str, data_dir: str | Path | None = None, *, corpus_texts=None, seed: int = 0,
              max_train: int | None = None) -> TaskData:
    """Examples of a task. ``corpus-pairs`` is built from ``corpus_texts`` (a callable giving the documents);
    a GLUE task reads ``data_dir`` when given, else the hub (one-line error when neither works)."""
    spec = task_spec(name)
    if spec.name == DEFAULT_TASK:
        expect(corpus_texts is not None, "the corpus-pairs task needs a corpus", field="--task")
        data = corpus_pairs(corpus_texts(), seed=seed)
    elif data_dir is not None:
        data = load_glue_tsv(spec, Path(data_dir))
    else:
        data = load_glue_hub(spec)
    if max_train is not None:
        data.train = data.train[:max_train]
    expect(len(data.train) > 0 and len(data.dev) > 0, f"task {spec.name} has {len(data.train)} training and "
           f"{len(data.dev)} dev examples; need at least one of each", field="--task")
    return data


# ----------------------------------------------------------------- GLUE files

def _task_dir(spec: TaskSpec, root: Path) -> Path:
    """``root`` itself when it holds the task's train.tsv, else root/<GLUE dir name> (the glue_data layout)."""
    expect(root.is_dir(), "not a directory", source=root, field="--data")
    if (root / "train.tsv").is_file():
        return root
    sub = root / _GLUE_DIRS[spec.name]
    expect((sub / "train.tsv").is_file(), f"no train.tsv for {spec.name} here or in {_GLUE_DIRS[spec.name]}/",
           source=root, field="--data")
    return sub


def load_glue_tsv(spec: TaskSpec, root: Path) -> TaskData:
    d = _task_dir(spec, root)
    dev = d / f"{spec.dev}.tsv"
    expect(dev.is_file(), f"missing {dev.name} (GLUE's dev split, which is scored)", source=d, field="--data")
    return TaskData(spec, read_glue_tsv(spec, d / "train.tsv"), read_glue_tsv(spec, dev),
                    {"source": "glue-tsv", "dir": str(d)})


def read_glue_tsv(spec: TaskSpec, path: Path) -> list[Example]:
    """Rows of a GLUE TSV file. GLUE's files are tab-separated with literal quote characters (QUOTE_NONE)."""
    need = max(max(spec.tsv_text), spec.tsv_label) + 1
    out: list[Example] = []
    try:
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"unreadable GLUE file ({err})", source=path) from None
    for lineno, row in enumerate(rows[1:] if spec.tsv_header else rows, start=2 if spec.tsv_header else 1):
        if not row or not any(row):
            continue
        expect(len(row) >= need, f"line {lineno} has {len(row)} columns, expected at least {need} "
               f"({spec.name} format)", source=path, field=f"line {lineno}")
        texts = [row[i] for i in spec.tsv_text]
        out.append((texts[0], texts[1] if len(texts) > 1 else None, _label(spec, row[spec.tsv_label], path, lineno)))
    return out


def _label(spec: TaskSpec, raw: str, path: Path, lineno: int) -> int:
    raw = raw.strip()
    if spec.label_names:
        expect(raw in spec.label_names, f"expected a label in {list(spec.label_names)}, got {raw!r}",
               source=path, field=f"line {lineno}")
        return spec.label_names.index(raw)
    expect(raw.isdigit() and int(raw) < spec.labels, f"expected an integer label in [0, {spec.labels}), got {raw!r}",
           source=path, field=f"line {lineno}")
    return int(raw)


def _hub_unreachable() -> str | None:
    """Why the hub cannot be reached (None: it can, or offline mode asks for the local cache). One quick
    connection instead of the hub client's minutes of retries and their log lines on a machine without network."""
    if any(os.environ.get(v) for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")):
        return None
    host = urllib.parse.urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or ""
    try:
        socket.create_connection((host, 443), timeout=5).close()
    except OSError as err:
        return f"{host}: {err.strerror or type(err).__name__}; set HF_DATASETS_OFFLINE=1 to use a cached copy"
    return None


def load_glue_hub(spec: TaskSpec) -> TaskData:
    down = _hub_unreachable()
    if down:
        raise UserError(f"GLUE task {spec.name}: the hub is not reachable ({down}) and no --data DIR with GLUE's "
                        "TSV files was given", field="--data")
    import datasets  # slow import; only hub runs pay for it

    try:
        ds = datasets.load_dataset("nyu-mll/glue", spec.hub)
    except Exception as err:  # datasets raises many types when offline (ConnectionError, OSError, DatasetsError...)
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"GLUE task {spec.name}: the hub is not reachable ({reason[:120]}) and no --data DIR with "
                        f"GLUE's TSV files was given", field="--data") from None

    def rows(split: str) -> list[Example]:
        part = ds[split]
        cols = [part[c] for c in spec.hub_text]
        b = cols[1] if len(cols) > 1 else [None] * len(part)
        return list(zip(cols[0], b, (int(x) for x in part["label"])))
    return TaskData(spec, rows("train"), rows(spec.hub_dev), {"source": "hub", "dataset": f"nyu-mll/glue:{spec.hub}"})


# ----------------------------------------------------------------- offline default task

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
#: Sentences shorter than this many words ("See below.") carry too little to judge adjacency.
_MIN_WORDS = 4
#: Whole documents held out for the dev split: no sentence of a dev pair is ever trained on.
_DEV_FRACTION = 0.1
#: Cap on dev pairs: enough for +-1.5 % accuracy resolution at 50 %, cheap to score on a CPU.
_MAX_DEV = 1000


def _sentences(doc: str) -> list[str]:
    text = " ".join(doc.split())
    return [s for s in _SENTENCE_END.split(text) if len(s.split()) >= _MIN_WORDS]


def corpus_pairs(texts: list[str], seed: int = 0) -> TaskData:
    """Adjacent-vs-random sentence pairs (BERT's next-sentence prediction, as a fine-tuning task).

    Per adjacent sentence pair (A, B) of a document, a fair coin (seeded) keeps B (label 1) or replaces it
    by a sentence of another document of the same split (label 0). Documents go whole to train or dev
    (a fixed 10 % by a seeded permutation), so dev pairs are unseen text. The split and the pairs depend
    on the corpus and ``seed`` only."""
    docs = [s for s in (_sentences(t) for t in texts) if len(s) >= 2]
    expect(len(docs) >= 20, f"corpus has {len(docs)} documents of two or more sentences; the corpus-pairs task "
           "needs at least 20", field="--task")
    order = np.random.default_rng([seed, 7]).permutation(len(docs))
    n_dev = max(2, int(len(docs) * _DEV_FRACTION))
    dev_docs = [docs[i] for i in sorted(order[:n_dev])]
    train_docs = [docs[i] for i in sorted(order[n_dev:])]
    train = _pairs(train_docs, np.random.default_rng([seed, 8]))
    dev = _pairs(dev_docs, np.random.default_rng([seed, 9]))[:_MAX_DEV]
    return TaskData(TASKS[DEFAULT_TASK], train, dev, {"source": "corpus", "documents": len(docs),
                                                      "dev_documents": n_dev, "seed": seed})


def _pairs(docs: list[list[str]], rng: np.random.Generator) -> list[Example]:
    out: list[Example] = []
    for d, sents in enumerate(docs):
        for j in range(len(sents) - 1):
            if rng.random() < 0.5:
                out.append((sents[j], sents[j + 1], 1))
                continue
            other = int(rng.integers(len(docs) - 1))
            other += other >= d  # any document but this one
            pool = docs[other]
            out.append((sents[j], pool[int(rng.integers(len(pool)))], 0))
    perm = rng.permutation(len(out))
    return [out[i] for i in perm]


# ----------------------------------------------------------------- metrics

def classification_metrics(pred: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    """Accuracy, F1 of class 1 and the Matthews correlation (multi-class form, Gorodkin 2004, as
    sklearn's matthews_corrcoef). Three formulas on a confusion matrix: not worth scikit-learn as a
    dependency. F1 is NaN for tasks with more than two labels (GLUE reports none there)."""
    pred, gold = np.asarray(pred, dtype=np.int64), np.asarray(gold, dtype=np.int64)
    expect(pred.shape == gold.shape and pred.size > 0, "expected equal, non-empty prediction and label arrays")
    k = max(int(max(pred.max(), gold.max())) + 1, 2)
    cm = np.zeros((k, k), dtype=np.float64)
    np.add.at(cm, (gold, pred), 1.0)
    n, correct = cm.sum(), np.trace(cm)
    t, p = cm.sum(axis=1), cm.sum(axis=0)  # true and predicted counts per class
    denom = np.sqrt((n * n - p @ p) * (n * n - t @ t))
    mcc = float((correct * n - t @ p) / denom) if denom > 0 else 0.0
    f1 = float("nan")
    if k == 2:
        f1 = float(2 * cm[1, 1] / (t[1] + p[1])) if (t[1] + p[1]) > 0 else 0.0
    return {"accuracy": float(correct / n), "f1": f1, "mcc": mcc}


def task_scores(spec: TaskSpec, pred, gold) -> dict[str, float]:
    """The metrics GLUE reports for this task (headline first), e.g. CoLA -> {"mcc": ...}."""
    all_metrics = classification_metrics(pred, gold)
    return {m: all_metrics[m] for m in spec.metrics}
