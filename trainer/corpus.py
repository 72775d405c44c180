"""Where the training text comes from: the offline default corpus, local text files, or a
Hugging Face dataset. Each source gives a cheap identity key (for caches) and loads lazily, so a
cached run never re-reads or re-downloads its text.
"""
from __future__ import annotations

import functools
import glob
import importlib
import inspect
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from accelsim.errors import UserError, expect

#: Standard-library modules whose docstrings join the default corpus. A fixed list (not
#: ``sys.stdlib_module_names``) so the corpus is the same on every install of a Python version, and
#: so nothing with import side effects (``this``, ``antigravity``, ``tkinter``...) is ever imported.
STDLIB_MODULES = tuple("""
abc argparse ast asyncio asyncio.events asyncio.streams asyncio.tasks base64 bisect builtins bz2 calendar cmd code
codecs codeop collections collections.abc colorsys compileall concurrent.futures configparser contextlib
contextvars copy csv ctypes dataclasses datetime decimal difflib dis doctest email email.headerregistry
email.message email.policy email.utils enum faulthandler filecmp fnmatch fractions ftplib functools gc getopt
gettext glob graphlib gzip hashlib heapq hmac html html.parser http http.client http.cookiejar http.cookies
http.server imaplib importlib importlib.metadata importlib.resources inspect io ipaddress itertools json
json.decoder locale logging logging.config logging.handlers lzma mailbox math mimetypes multiprocessing
multiprocessing.pool numbers operator optparse os os.path pathlib pdb pickle pickletools platform plistlib
poplib pprint py_compile pydoc queue quopri random re reprlib sched secrets selectors shelve shlex shutil
signal smtplib socket socketserver sqlite3 ssl stat statistics string struct subprocess sys sysconfig tarfile
tempfile textwrap threading time timeit tokenize trace traceback tracemalloc types typing unittest
unittest.case unittest.mock urllib urllib.parse urllib.request urllib.robotparser uuid warnings wave weakref
wsgiref.handlers wsgiref.simple_server xml.dom xml.dom.minidom xml.etree.ElementTree xml.sax zipfile zipimport
zlib zoneinfo
""".split())
#: Docstrings shorter than this are one-liners such as "Return repr(self)." that add no prose.
MIN_DOC_CHARS = 40
#: Bump when the default corpus recipe changes (cache keys include it).
DEFAULT_CORPUS_VERSION = 1


@dataclass
class CorpusSource:
    """A corpus before loading: ``identity`` names its content cheaply, ``load_all`` reads it."""

    identity: str
    info: dict[str, Any]
    load_all: Callable[[], list[str]] = field(repr=False)
    max_texts: int | None = None

    @property
    def key(self) -> str:
        """Cache key: the content identity plus the slice of it that is used."""
        return f"{self.identity}|max_texts={self.max_texts}"

    @functools.cached_property
    def texts(self) -> list[str]:
        texts = [t for t in self.load_all() if t.strip()]
        return texts[: self.max_texts] if self.max_texts is not None else texts


def default_corpus() -> list[str]:
    """Offline English prose that ships with every Python: the language-reference topics of
    ``pydoc_data`` plus standard-library docstrings, deduplicated, in a fixed order."""
    return list(_default_corpus())


@functools.cache
def _default_corpus() -> tuple[str, ...]:
    from pydoc_data.topics import topics

    seen: set[str] = set()
    out: list[str] = []

    def add(doc: Any) -> None:
        if isinstance(doc, str):
            doc = inspect.cleandoc(doc)
            if len(doc) >= MIN_DOC_CHARS and doc not in seen:
                seen.add(doc)
                out.append(doc)

    for key in sorted(topics):
        add(topics[key])
    with warnings.catch_warnings():  # touching deprecated aliases (typing.io ...) warns
        warnings.simplefilter("ignore")
        for name in STDLIB_MODULES:
            try:
                module = importlib.import_module(name)
            except ImportError:  # optional modules (ssl, sqlite3, ctypes) may be absent from a build
                continue
            add(module.__doc__)
            for obj in _public_members(module):
                add(getattr(obj, "__doc__", None))
                if inspect.isclass(obj):
                    for member in _public_members(obj):
                        add(getattr(member, "__doc__", None))
    return tuple(out)


def _public_members(obj: Any) -> list[Any]:
    members = []
    for name, value in sorted(vars(obj).items()):
        if name.startswith("_") or inspect.ismodule(value):
            continue
        if inspect.isclass(value) or inspect.isroutine(value) or isinstance(value, (property, classmethod,
                                                                                   staticmethod)):
            members.append(value)
    return members


def _default_source(cfg: Any) -> CorpusSource:
    version = ".".join(map(str, sys.version_info[:3]))
    return CorpusSource(identity=f"stdlib-docs-v{DEFAULT_CORPUS_VERSION}:python-{version}",
                        info={"source": "stdlib-docs", "python": version}, load_all=default_corpus,
                        max_texts=cfg.max_texts)


def _text_files_source(cfg: Any) -> CorpusSource:
    pattern = str(Path(cfg.text_files).expanduser())
    paths = sorted(Path(p) for p in glob.glob(pattern, recursive=True) if Path(p).is_file())
    expect(bool(paths), f"no files match '{cfg.text_files}'", field="text_files")
    stamps = []
    for p in paths:
        try:
            st = p.stat()
        except OSError as err:
            raise UserError(f"unreadable file ({err.strerror})", source=p, field="text_files") from None
        stamps.append(f"{p.resolve()}:{st.st_size}:{st.st_mtime_ns}")
    return CorpusSource(identity="files:" + "|".join(stamps),
                        info={"source": "text-files", "pattern": cfg.text_files, "n_files": len(paths)},
                        load_all=functools.partial(_read_paragraphs, paths), max_texts=cfg.max_texts)


def _read_paragraphs(paths: list[Path]) -> list[str]:
    # Blank-line separated paragraphs are the documents: prose stays together, and a corpus with
    # one document per line (no blank lines) still works as a single stream per file.
    texts = []
    for p in paths:
        try:
            content = p.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise UserError(f"not UTF-8 text (byte {err.start})", source=p, field="text_files") from None
        except OSError as err:
            raise UserError(f"unreadable file ({err.strerror})", source=p, field="text_files") from None
        texts.extend(par.strip() for par in content.replace("\r\n", "\n").split("\n\n") if par.strip())
    return texts


def _dataset_source(cfg: Any) -> CorpusSource:
    name, _, config = cfg.dataset.partition(":")
    expect(bool(name), "expected NAME or NAME:CONFIG", field="dataset")
    return CorpusSource(identity=f"dataset:{name}:{config}:train",
                        info={"source": "dataset", "name": name, "config": config or None, "split": "train"},
                        load_all=functools.partial(_load_dataset_texts, name, config or None, cfg.max_texts),
                        max_texts=cfg.max_texts)


def _load_dataset_texts(name: str, config: str | None, max_texts: int | None) -> list[str]:
    import datasets  # slow import; only runs that ask for a dataset pay for it

    try:
        ds = datasets.load_dataset(name, config, split="train")
    except (datasets.exceptions.DatasetsError, OSError, ValueError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"could not load dataset {name!r} (offline? unknown name or config? {reason})",
                        field="dataset") from None
    column = _text_column(ds.features)
    expect(column is not None, f"dataset {name!r} has no string column (columns: {list(ds.features)})",
           field="dataset")
    if max_texts is not None:
        # Fetch a margin over max_texts: empty rows are dropped afterwards (wikitext has many).
        ds = ds.select(range(min(len(ds), 2 * max_texts + 100)))
    return [t for t in ds[column] if isinstance(t, str)]


def _text_column(features: Any) -> str | None:
    def is_string(feature: Any) -> bool:
        return getattr(feature, "dtype", None) in ("string", "large_string")

    if "text" in features and is_string(features["text"]):
        return "text"
    return next((name for name, feat in features.items() if is_string(feat)), None)


#: Which config field selects which source; the default corpus applies when neither is set.
SOURCES: dict[str, Callable[[Any], CorpusSource]] = {
    "text_files": _text_files_source,
    "dataset": _dataset_source,
}


def resolve_corpus(cfg: Any) -> CorpusSource:
    """The source a DataConfig asks for (``text_files`` or ``dataset``; default corpus otherwise)."""
    chosen = [name for name in SOURCES if getattr(cfg, name, None)]
    expect(len(chosen) <= 1, f"give only one of {chosen}", field=chosen[-1] if chosen else None)
    return SOURCES[chosen[0]](cfg) if chosen else _default_source(cfg)
