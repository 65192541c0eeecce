"""Doc-grounded training examples (RAFT, arXiv 2403.10131): a task, retrieved documents, and the body.

From a library (the standard library by default), take the functions whose bodies call public APIs of the
same library. Each becomes a problem-form example (signature and docstring -> the complete function) whose
documents are, with probability `oracle_p` (RAFT's P, 0.8 in the paper), the called APIs' own documents (the
oracle) among `n_distractors` distractors, and otherwise distractors only. Distractors are what the RAG
conditions' own index retrieves for the task, minus the example's own document and the oracle -- excluded by
document id (and parent id for chunks), never by substring.

With probability `rename_p` an example that has its oracle is renamed (`data.rename`): the library's module,
the called APIs and their keyword arguments get invented names, consistently in the prompt, the documents and
the target, so the model has to read the documents to answer. A renamed example always carries its oracle.

Whole modules are held out (`heldout_modules`), so the eval loss measures generalisation to unseen modules.
The data layer does not import retrieval: `retrieve(problem, k) -> documents` and `doc_tokens(document) ->
tokens in the prompt` are passed in (see experiments.prepare).
"""

from __future__ import annotations

import ast
import hashlib
import random
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from dorag.core.config import option
from dorag.data.ast_extract import FunctionRecord, is_useful_docstring
from dorag.data.rename import NameMaker, RenameMap, identifiers, rename_code, rename_prose
from dorag.data.sft_data import make_problem_example, problem_from_record

Document = dict[str, Any]
Retrieve = Callable[[dict[str, Any], int], list[Document]]


@dataclass
class DocGroundedConfig:
    """`dorag data prepare --task doc-grounded`: RAFT-style examples with oracle and distractor documents."""

    oracle_p: float = option(0.8, "share of examples whose documents include the oracle (RAFT's P)")
    n_distractors: int = option(3, "distractor documents per example (distractor-only examples get one more "
                                "per missing oracle, so every example shows as many documents)")
    max_oracles: int = option(2, "oracle documents per example at most (the called APIs, in call order)")
    rename_p: float = option(0.5, "share of oracle examples whose library names are renamed to invented ones")
    heldout_modules: float = option(0.1, "share of the library's modules held out whole for validation")
    max_target_chars: int = option(2400, "skip functions longer than this")
    budget_tokens: int = option(1024, "the documents must fit this many prompt tokens whole (the RAG budget)")
    min_words: int = option(4, "docstrings shorter than this are not tasks")

    def check(self) -> list[str]:
        problems = [f"{f}: must be in [0, 1], got {getattr(self, f)}" for f in ("oracle_p", "rename_p", "heldout_modules")
                    if not 0 <= getattr(self, f) <= 1]
        if self.n_distractors < 0 or self.max_oracles < 1:
            problems.append("n_distractors must be >= 0 and max_oracles >= 1")
        return problems


def _bucket(key: str) -> float:
    return int(hashlib.sha1(key.encode()).hexdigest()[:8], 16) / 2**32


class ApiIndex:
    """The library's functions and classes by (module, qualname), with their corpus documents' ids."""

    def __init__(self, records: Iterable[FunctionRecord], docs: Sequence[Document]) -> None:
        self.records: dict[tuple[str, str], FunctionRecord] = {}
        for rec in records:
            self.records.setdefault((rec.module, rec.qualname), rec)
        self.modules = {m for m, _ in self.records}
        self.docs: dict[tuple[str, str], Document] = {}
        for d in docs:
            meta = d.get("meta") or {}
            if meta.get("chunk", 0) != 0 or "module" not in meta or "qualname" not in meta:
                continue  # an API's document is its first piece: the def line and docstring are there
            self.docs.setdefault((meta["module"], meta["qualname"]), d)

    def doc(self, api: tuple[str, str]) -> Document | None:
        d = self.docs.get(api)
        if d is None and api in self.records:  # a class: its __init__ (or the class document, when there is one)
            d = self.docs.get((api[0], f"{api[1]}.__init__"))
        return d


def doc_root(doc: Document) -> str:
    return (doc.get("meta") or {}).get("parent") or doc["id"]


def called_apis(rec: FunctionRecord, index: ApiIndex) -> list[tuple[tuple[str, str], str]]:
    """The library APIs `rec`'s body calls, in order, each once, with how it was reached: "module" (``m.f``
    after ``import m``), "from" (``f`` after ``from m import f``) or "local" (a function of the same module)."""
    try:
        fn = ast.parse(rec.code).body[0]
    except (SyntaxError, IndexError):
        return []
    mods: dict[str, str] = {}
    names: dict[str, tuple[str, str]] = {}
    for stmt in rec.imports:
        try:
            node = ast.parse(stmt).body[0]
        except (SyntaxError, IndexError):
            continue
        if isinstance(node, ast.Import):
            for a in node.names:
                if "." not in a.name and a.name in index.modules:
                    mods[a.asname or a.name] = a.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module in index.modules:
            for a in node.names:
                names[a.asname or a.name] = (node.module, a.name)
    found: dict[tuple[str, str], str] = {}
    for node in ast.walk(fn):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        api, how = None, ""
        if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id in mods:
            api, how = (mods[f.value.id], f.attr), "module"
        elif isinstance(f, ast.Name) and f.id in names:
            api, how = names[f.id], "from"
        elif isinstance(f, ast.Name) and not rec.is_method:
            api, how = (rec.module, f.id), "local"
        if api and api != (rec.module, rec.qualname) and api not in found and index.doc(api) is not None \
                and not api[1].startswith("_"):
            found[api] = how
    return list(found.items())


@dataclass
class BuildReport:
    candidates: int = 0
    examples: int = 0
    heldout: int = 0
    with_oracle: int = 0
    distractors_only: int = 0
    renamed: int = 0
    checked_by_execution: int = 0
    heldout_module_names: tuple[str, ...] = ()
    dropped: Counter[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["dropped"] = dict(self.dropped or {})
        d["heldout_module_names"] = list(self.heldout_module_names)
        return d


def _rename_map(apis: Sequence[tuple[tuple[str, str], str]], index: ApiIndex, maker: NameMaker) -> RenameMap | None:
    """Invented names for the oracle APIs' module, names and parameters; None when an API is reached in a way
    the renamer does not rewrite (a dotted module, a method)."""
    m = RenameMap()
    for (mod, qual), how in apis:
        if "." in qual or (how != "local" and "." in mod):
            return None
        if how != "local" and mod not in m.modules:
            m.modules[mod] = maker.make(mod)
        m.apis[(mod, qual)] = maker.make(qual)
        rec = index.records.get((mod, qual))
        if rec is not None and not qual[:1].isupper():
            try:
                fn = ast.parse(rec.code).body[0]
            except (SyntaxError, IndexError):
                return None
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = fn.args
                params = [p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs) if p.arg not in ("self", "cls")]
                m.params[(mod, qual)] = {p: maker.make(p) for p in params}
    return m


def _rename_doc(doc: Document, mapping: RenameMap) -> Document:
    meta = dict(doc.get("meta") or {})
    module = meta.get("module")
    text = rename_prose(rename_code(doc["text"], mapping, defines=module), mapping)
    if module is not None:
        new_mod = mapping.modules.get(module, module)
        qual = meta.get("qualname", "")
        head, _, rest = qual.partition(".")
        new_head = mapping.apis.get((module, head), head)
        meta.update(module=new_mod, qualname=new_head + ("." + rest if rest else ""))
    return {"id": doc["id"], "text": text, "meta": {**meta, "renamed": True}}


@dataclass
class _Task:
    rec: FunctionRecord  # the function, for the calls it makes
    problem: dict[str, Any]
    target: str
    module: str  # what held-out modules are chosen by
    test: str | None = None  # a check(candidate) test: the example can be verified by execution


def _library_tasks(records: Sequence[FunctionRecord], cfg: DocGroundedConfig, report: BuildReport,
                   index: ApiIndex) -> Iterable[_Task]:
    for rec in records:
        if rec.is_method or rec.name.startswith("_") or not is_useful_docstring(rec.docstring, rec.name, cfg.min_words):
            continue
        if len(rec.code) > cfg.max_target_chars:
            report.dropped["too_long"] += 1
            continue
        if not called_apis(rec, index):
            continue
        made = problem_from_record(rec)
        if made is None:
            report.dropped["no_body"] += 1
            continue
        yield _Task(rec, made[0], made[1], rec.module)


def _tested_tasks(tasks: Sequence[dict[str, Any]], report: BuildReport) -> Iterable[_Task]:
    """Problem-form examples with tests (a self-generated set): their solutions call the library too."""
    from dorag.data.ast_extract import extract_functions

    for ex in tasks:
        problem, target = ex["problem"], ex["target"]
        if not target.startswith(problem["prompt"]) or not problem.get("test"):
            report.dropped["task_without_test_or_prefix"] += 1
            continue
        recs = [r for r in extract_functions(target, path=ex["id"], module=f"task:{ex['id']}")
                if r.name == problem["entry_point"] and not r.is_method]
        if recs:
            yield _Task(recs[0], problem, target, f"task:{ex.get('source', 'tasks')}", problem["test"])


def _target_check(problem: dict[str, Any], target: str) -> Callable[[Document], bool]:
    """Whether a document holds this example's answer, by the leakage check's tests on one problem."""
    from dorag.data.leakage import LeakageChecker

    prompt = problem.get("prompt", "")
    body = target[len(prompt):] if prompt and target.startswith(prompt) else target
    checker = LeakageChecker([{"task_id": "own", "prompt": prompt, "canonical_solution": body,
                               "entry_point": problem.get("entry_point", "")}])
    # a sibling that shares the docstring (an alias, an overload) is a fair distractor: only the answer counts
    return lambda doc: any(f["kind"] == "solution" for f in checker.check(doc["text"]))


def build_examples(records: Sequence[FunctionRecord], docs: Sequence[Document], retrieve: Retrieve,
                   doc_tokens: Callable[[Document], int], cfg: DocGroundedConfig, seed: int = 0,
                   progress: Callable[[str], None] = lambda m: None, tasks: Sequence[dict[str, Any]] = (),
                   check: Callable[[list[str]], list[bool]] | None = None) -> tuple[list[dict], list[dict], BuildReport]:
    """(train examples, held-out examples, report) from a library's functions and its corpus documents.

    `tasks` are problem-form examples with tests (e.g. `dorag data selfgen`'s) whose solutions call the library:
    they become doc-grounded examples too, and, given `check(programs) -> passed` (the sandbox), each is run with
    its test -- a renamed one against a generated wrapper module that maps the invented names onto the real ones
    -- and dropped if it fails. The library's own functions carry no tests and are not executed.
    """
    index = ApiIndex(records, docs)
    rng = random.Random(seed)
    report = BuildReport(dropped=Counter())
    modules = sorted({rec.module for rec in records})
    examples: list[dict] = []
    programs: list[tuple[dict, str]] = []
    maker = NameMaker(seed, avoid={*modules, *(part for m in modules for part in m.split(".")), *(r.name for r in records)})
    items = [*_library_tasks(records, cfg, report, index), *_tested_tasks(tasks, report)]
    for n, task in enumerate(items):
        if n and n % 200 == 0:
            progress(f"doc-grounded: {n}/{len(items)} tasks, {len(examples)} examples")
        rec, problem, target = task.rec, task.problem, task.target
        apis = called_apis(rec, index)
        if not apis:
            continue
        report.candidates += 1
        oracles = [index.doc(api) for api, _ in apis[: cfg.max_oracles]]
        oracle_docs = [d for d in oracles if d is not None]
        own = {rec.id}
        excluded = own | {doc_root(d) for d in oracle_docs}
        with_oracle = rng.random() < cfg.oracle_p
        n_docs = cfg.n_distractors + (0 if with_oracle else len(oracle_docs))
        hits = retrieve(problem, n_docs + len(excluded) + 8)
        # by id first; then by content, for a copy of the function under another id (the stdlib holds some
        # functions twice), with the leakage check's code and statement tests
        holds_target = _target_check(problem, target)
        if any(holds_target(d) for d in oracle_docs):
            report.dropped["oracle_holds_target"] += 1
            continue
        distractors = []
        for d in hits:
            if len(distractors) == n_docs:
                break
            if doc_root(d) in excluded or d["id"] in excluded:
                continue
            if holds_target(d):
                report.dropped["distractor_holds_target"] += 1  # the document is skipped, the example kept
                continue
            distractors.append(d)
        chosen = list(distractors)
        if with_oracle:
            for d in oracle_docs:
                chosen.insert(rng.randint(0, len(chosen)), d)
        # every document must fit the budget whole: a renamed name the model cannot see would teach invention
        while chosen and sum(doc_tokens(d) + 1 for d in chosen) > cfg.budget_tokens:
            drop = next((i for i in range(len(chosen) - 1, -1, -1) if chosen[i] not in oracle_docs), None)
            if drop is None:
                break
            chosen.pop(drop)
        if with_oracle and sum(doc_tokens(d) + 1 for d in chosen) > cfg.budget_tokens:
            report.dropped["oracle_over_budget"] += 1
            continue
        meta = {"source": rec.path, "qualname": rec.qualname, "module": task.module,
                "apis": [f"{m}.{q}" for (m, q), _ in apis],
                "oracle": [d["id"] for d in oracle_docs] if with_oracle else [], "renamed": False}
        mapping = None
        if with_oracle and rng.random() < cfg.rename_p:
            mapping = _rename_map(apis[: cfg.max_oracles], index, maker)
            renamed = _renamed(problem, target, rec, chosen, mapping) if mapping else None
            if renamed is None:
                report.dropped["not_renamable"] += 1  # kept, unrenamed
                mapping = None
            else:
                problem, target, chosen = renamed
                meta.update(renamed=True, rename=mapping.to_dict())
        ex = make_problem_example(f"grounded:{rec.id}", problem, target, docs=chosen, meta=meta, source="doc-grounded")
        if task.test is not None and check is not None:
            program = check_program(target, task.test, problem["entry_point"], mapping)
            if program is None:
                report.dropped["not_executable"] += 1
                continue
            programs.append((ex, program))
        examples.append(ex)
    if programs:
        passed = check([prog for _, prog in programs])
        failed = {id(ex) for (ex, _), ok in zip(programs, passed) if not ok}
        report.checked_by_execution = len(programs)
        report.dropped["failed_execution_check"] += len(failed)
        examples = [e for e in examples if id(e) not in failed]
    for ex in examples:
        report.with_oracle += bool(ex["meta"]["oracle"])
        report.distractors_only += not ex["meta"]["oracle"]
        report.renamed += ex["meta"]["renamed"]
    held = heldout_modules(sorted({e["meta"]["module"] for e in examples}), cfg.heldout_modules, seed)
    report.heldout_module_names = tuple(held)
    train = [e for e in examples if e["meta"]["module"] not in held]
    heldout = [e for e in examples if e["meta"]["module"] in held]
    report.examples, report.heldout = len(train), len(heldout)
    return train, heldout, report


def wrapper_modules(mapping: RenameMap) -> dict[str, str]:
    """Source of a module per renamed module: each invented API calls the real one, with renamed keyword
    arguments mapped back, so code written against the invented names runs (and can be tested)."""
    out: dict[str, str] = {}
    for real, new_mod in mapping.modules.items():
        lines = ["import importlib as _importlib", f"_real = _importlib.import_module({real!r})", ""]
        for (mod, api), new in sorted(mapping.apis.items()):
            if mod != real:
                continue
            params = {v: k for k, v in (mapping.params.get((mod, api)) or {}).items()}
            if params:
                lines += [f"def {new}(*args, **kwargs):",
                          f"    names = {params!r}",
                          f"    return _real.{api}(*args, **{{names.get(k, k): v for k, v in kwargs.items()}})", ""]
            else:
                lines += [f"{new} = _real.{api}", ""]
        out[new_mod] = "\n".join(lines)
    return out


def check_program(target: str, test: str, entry_point: str, mapping: RenameMap | None) -> str | None:
    """The program that checks an example: the wrapper modules installed under their invented names (as the
    Unseen-API benchmark installs zorbel), the target, its test and the call of check. None when a renamed
    name is not a module-level API (a same-module function cannot be wrapped)."""
    setup = ""
    if mapping is not None:
        if any(mod not in mapping.modules for mod, _ in mapping.apis):
            return None
        setup = "import sys as _sys, types as _types\n"
        for name, source in wrapper_modules(mapping).items():
            setup += (f"_m = _types.ModuleType({name!r})\nexec(compile({source!r}, {name + '.py'!r}, 'exec'), _m.__dict__)\n"
                      f"_sys.modules[{name!r}] = _m\n")
        setup += "del _sys, _types, _m\n"
    return f"{setup}{target}\n\n{test}\n\ncheck({entry_point})\n"


def heldout_modules(modules: Sequence[str], fraction: float, seed: int) -> list[str]:
    """A seeded share of the modules that gave examples (at least one, and never all, when there are two)."""
    if fraction <= 0 or len(modules) < 2:
        return []
    n = min(len(modules) - 1, max(1, round(fraction * len(modules))))
    return sorted(sorted(modules, key=lambda m: _bucket(f"heldout:{seed}:{m}"))[:n])


def _renamed(problem: dict, target: str, rec: FunctionRecord, docs: list[Document],
             mapping: RenameMap) -> tuple[dict, str, list[Document]] | None:
    """The example with the map applied to its target, prompt and documents, or None if any of them no longer
    parses, the prompt is no longer the target's prefix, or the target still uses a real name of a renamed
    module. The prompt (imports, signature, docstring) is renamed alone and must equal the renamed target's
    start; mentions in its docstring are renamed as prose."""
    prompt = problem["prompt"]
    if not target.startswith(prompt):
        return None
    try:
        new_prompt = rename_code(prompt, mapping, defines=rec.module)
        new_target = rename_code(target, mapping, defines=rec.module)
        if not new_target.startswith(new_prompt):
            return None
        prose = rename_prose(new_prompt, mapping)
        new_target = prose + new_target[len(new_prompt):]
        ast.parse(prose)
        ast.parse(new_target)
        if not _fully_renamed(new_target, mapping):
            return None
        new_docs = [_rename_doc(d, mapping) for d in docs]
    except (ValueError, SyntaxError):
        return None
    return {**problem, "prompt": prose}, new_target, new_docs


def _fully_renamed(code: str, mapping: RenameMap) -> bool:
    """Every use of a renamed module in `code` goes through renamed APIs: a module renamed while the target
    still calls one of its real names (``vorimak.compile``) would teach the model a name no document shows."""
    new_mods = set(mapping.modules.values())
    new_apis = set(mapping.apis.values())
    tree = ast.parse(code)
    aliases = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names if a.name in new_mods}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in new_mods:
            if any(a.name not in new_apis for a in node.names):
                return False
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            if node.attr not in new_apis:
                return False
    return True


def unexplained_names(ex: dict) -> set[str]:
    """Invented names in a renamed example's target that neither its prompt nor its documents show (should be
    empty: the model cannot know them otherwise)."""
    rename = (ex.get("meta") or {}).get("rename")
    if not rename:
        return set()
    invented = {*rename["modules"].values(), *rename["apis"].values(), *(n for p in rename["params"].values() for n in p.values())}
    used = identifiers(ex["target"][len(ex["problem"]["prompt"]):]) & invented
    shown = identifiers(ex["problem"]["prompt"])
    for d in ex.get("docs") or ():
        meta = d.get("meta") or {}
        shown |= identifiers(d["text"]) | identifiers(f"{meta.get('module', '')}.{meta.get('qualname', '')}")
    return used - shown
