"""No-fake scan: fail on stubs and hollow tests in the project's own code.

    python scripts/no_fake_scan.py            # scan the project (exit 1 and one `path:line: problem` per finding)
    python scripts/no_fake_scan.py --root DIR # scan another tree laid out the same way (used by the tests)

What counts as a finding (standard library `ast` and `tokenize` only):

- `raise NotImplementedError` anywhere but in an abstract interface: a class deriving from
  `abc.ABC` / `typing.Protocol` (or with `metaclass=ABCMeta`), or a method decorated `@abstractmethod`.
- A TODO, FIXME or XXX comment (Python comments, and `#` comments in shell scripts).
- A function whose body, after an optional docstring, is only `pass`, `...`, nothing at all, or
  `return` of a placeholder constant (`None`, `0`, `""`, `{}`, `[]`, a bare `return`); abstract
  methods, methods of a `Protocol` and `@overload` signatures are interfaces, not stubs.
- A test (`test_*` function in a `test_*.py` file under `tests/`) that cannot fail: no `assert`,
  no `pytest.raises` / `pytest.warns` / `pytest.fail`, no `django_assert_num_queries`, and no call to
  an assertion helper (a function whose name starts with `assert` or `check_` or contains `assert`).
- `pytest.skip`, `pytest.mark.skip` or `pytest.mark.skipif` without a reason string, so that every
  skip prints why it happened.

Migrations, `.venv`, caches and hidden directories are not scanned.
"""

from __future__ import annotations

import ast
import io
import re
import sys
import tokenize
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from scan_report import Finding, findings_report, scan_parser

SCANNED_DIRS = ("agentchat_site", "core", "memory", "telemetry", "runtime", "web", "scripts", "bench", "tests")
SKIPPED_DIR_NAMES = frozenset({"migrations", ".venv", "__pycache__", "node_modules", "var"})
MARKER_RE = re.compile(r"\b(TODO|FIXME|XXX)\b")
SHELL_SUFFIXES = frozenset({".sh", ".bash", ""})
ABSTRACT_BASES = frozenset({"ABC", "Protocol"})
ABSTRACT_DECORATORS = frozenset({"abstractmethod", "abstractproperty", "abstractclassmethod", "abstractstaticmethod"})
# django_assert_num_queries and the like are covered by the "contains assert" rule.
ASSERTING_CALLS = frozenset({"pytest.raises", "pytest.warns", "pytest.fail", "pytest.deprecated_call"})
SKIP_MARKS = frozenset({"pytest.mark.skip", "pytest.mark.skipif", "mark.skip", "mark.skipif"})


def dotted_name(node: ast.AST) -> str:
    """`a.b.c` for a Name/Attribute chain, `""` for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = dotted_name(node.value)
        return f"{base}.{node.attr}" if base else ""
    return ""


def last_name(node: ast.AST) -> str:
    """The final identifier of a (possibly called) decorator or base expression."""
    if isinstance(node, ast.Call):
        return last_name(node.func)
    if isinstance(node, ast.Subscript):  # Protocol[T], Generic[T]
        return last_name(node.value)
    return dotted_name(node).rsplit(".", 1)[-1]


def is_abstract_class(cls: ast.ClassDef) -> bool:
    if any(last_name(base) in ABSTRACT_BASES for base in cls.bases):
        return True
    return any(kw.arg == "metaclass" and last_name(kw.value) == "ABCMeta" for kw in cls.keywords)


def is_protocol_class(cls: ast.ClassDef) -> bool:
    return any(last_name(base) == "Protocol" for base in cls.bases)


FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef


def decorator_names(func: FunctionNode) -> set[str]:
    return {last_name(d) for d in func.decorator_list}


def is_placeholder_constant(node: ast.expr | None) -> bool:
    if node is None:
        return True
    if isinstance(node, ast.Constant):
        return node.value is None or node.value == "" or (type(node.value) is int and node.value == 0)
    if isinstance(node, ast.Dict):
        return not node.keys
    if isinstance(node, ast.List):
        return not node.elts
    return False


def stub_kind(func: FunctionNode) -> str | None:
    """Why the function body is a stub, or None when it does something."""
    body = list(func.body)
    first = body[0] if body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        body = body[1:]
    if not body:
        return "has only a docstring"
    if len(body) != 1:
        return None
    stmt = body[0]
    if isinstance(stmt, ast.Pass):
        return "has only `pass`"
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and stmt.value.value is Ellipsis:
        return "has only `...`"
    if isinstance(stmt, ast.Return) and is_placeholder_constant(stmt.value):
        shown = "return" if stmt.value is None else f"return {ast.unparse(stmt.value)}"
        return f"only returns a placeholder (`{shown}`)"
    return None


def is_test_file(rel: Path) -> bool:
    return rel.parts[:1] == ("tests",) and rel.name.startswith("test_") and rel.suffix == ".py"


def test_asserts(func: FunctionNode) -> bool:
    """Whether a test function can fail: an assert, pytest.raises & co, or an assertion helper call."""
    for node in ast.walk(func):
        if isinstance(node, ast.Assert):
            return True
        if isinstance(node, ast.Call):
            name = dotted_name(node.func)
            short = name.rsplit(".", 1)[-1].lstrip("_")
            if name in ASSERTING_CALLS:
                return True
            if short.startswith(("assert", "check_")) or "assert" in short.lower():
                return True
    return False


def has_reason(call: ast.Call, *, positional_reason: bool) -> bool:
    """A skip call names its reason: `reason=` (or, for pytest.skip / mark.skip, the first argument)."""
    values: list[ast.expr] = [kw.value for kw in call.keywords if kw.arg in {"reason", "msg"}]
    if positional_reason and call.args:
        values.append(call.args[0])
    for value in values:
        if isinstance(value, ast.Constant):
            if isinstance(value.value, str) and value.value.strip():
                return True
        elif not isinstance(value, ast.Constant):
            return True  # an f-string or a variable: a computed reason is still a reason
    return False


class Visitor(ast.NodeVisitor):
    def __init__(self, rel: str, *, test_file: bool) -> None:
        self.rel = rel
        self.test_file = test_file
        self.findings: list[Finding] = []
        self.classes: list[ast.ClassDef] = []
        self.functions: list[FunctionNode] = []
        self.call_funcs: set[int] = set()

    def add(self, node: ast.AST, problem: str) -> None:
        self.findings.append(Finding(self.rel, getattr(node, "lineno", 0), problem))

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.classes.append(node)
        self.generic_visit(node)
        self.classes.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.visit_function(node)

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self.visit_function(node)

    def enclosing_class(self, func: FunctionNode) -> ast.ClassDef | None:
        """The class a function is a method of (directly), if any."""
        if self.classes and func in self.classes[-1].body:
            return self.classes[-1]
        return None

    def visit_function(self, node: FunctionNode) -> None:
        decorators = decorator_names(node)
        cls = self.enclosing_class(node)
        interface = bool(decorators & ABSTRACT_DECORATORS) or "overload" in decorators
        if cls is not None and is_protocol_class(cls):
            interface = True
        kind = stub_kind(node)
        if kind is not None and not interface:
            self.add(node, f"function `{node.name}` {kind}: implement it or remove it")
        if self.test_file and node.name.startswith("test_") and not test_asserts(node):
            self.add(node, f"test `{node.name}` cannot fail: it has no assert, pytest.raises or assertion helper")
        self.functions.append(node)
        self.generic_visit(node)
        self.functions.pop()

    def visit_Raise(self, node: ast.Raise) -> None:
        exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
        if exc is not None and last_name(exc) == "NotImplementedError" and not self.in_abstract_interface():
            self.add(node, "raises NotImplementedError outside an abstract interface (ABC/Protocol/@abstractmethod)")
        self.generic_visit(node)

    def in_abstract_interface(self) -> bool:
        if not self.functions:
            return False
        func = self.functions[-1]
        if decorator_names(func) & ABSTRACT_DECORATORS:
            return True
        cls = self.enclosing_class(func)
        return cls is not None and is_abstract_class(cls)

    def visit_Call(self, node: ast.Call) -> None:
        self.call_funcs.add(id(node.func))
        name = dotted_name(node.func)
        if name == "pytest.skip" and not has_reason(node, positional_reason=True):
            self.add(node, "pytest.skip without a reason: say why the test is skipped")
        elif name in {"pytest.mark.skip", "mark.skip"} and not has_reason(node, positional_reason=True):
            self.add(node, "pytest.mark.skip without a reason: pass reason=...")
        elif name in {"pytest.mark.skipif", "mark.skipif"} and not has_reason(node, positional_reason=False):
            self.add(node, "pytest.mark.skipif without a reason: pass reason=...")
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        # A bare `@pytest.mark.skip` (not called) carries no reason at all. Calls are visited
        # before their `func`, so `call_funcs` already knows whether this attribute is called.
        if id(node) not in self.call_funcs and dotted_name(node) in SKIP_MARKS:
            self.add(node, f"bare {dotted_name(node)} without a reason: call it with reason=...")
        self.generic_visit(node)


def comment_markers(source: str, rel: str) -> Iterator[Finding]:
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        return
    for tok in tokens:
        if tok.type == tokenize.COMMENT:
            match = MARKER_RE.search(tok.string)
            if match:
                yield Finding(rel, tok.start[0], f"{match.group(1)} comment: do the work or remove the note")


def shell_markers(source: str, rel: str) -> Iterator[Finding]:
    for number, line in enumerate(source.splitlines(), start=1):
        stripped = line.lstrip()
        comment = stripped if stripped.startswith("#") else (line.split(" #", 1)[1] if " #" in line else "")
        match = MARKER_RE.search(comment)
        if match:
            yield Finding(rel, number, f"{match.group(1)} comment: do the work or remove the note")


def scan_python(path: Path, rel: Path) -> list[Finding]:
    source = path.read_text(encoding="utf-8")
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        return [Finding(str(rel), exc.lineno or 0, f"does not parse: {exc.msg}")]
    visitor = Visitor(str(rel), test_file=is_test_file(rel))
    visitor.visit(tree)
    return [*visitor.findings, *comment_markers(source, str(rel))]


def is_shell_script(path: Path) -> bool:
    if path.suffix not in SHELL_SUFFIXES:
        return False
    try:
        with path.open("rb") as handle:
            head = handle.read(64)
    except OSError:
        return False
    return head.startswith(b"#!") and (b"sh" in head.split(b"\n", 1)[0])


def iter_files(root: Path, dirs: Iterable[str]) -> Iterator[Path]:
    for name in dirs:
        top = root / name
        if not top.is_dir():
            continue
        for path in sorted(top.rglob("*")):
            rel_parts = path.relative_to(root).parts
            if any(part in SKIPPED_DIR_NAMES or part.startswith(".") for part in rel_parts[:-1]):
                continue
            if path.is_file():
                yield path


def scan(root: Path, dirs: Sequence[str] = SCANNED_DIRS) -> tuple[int, list[Finding]]:
    """Scan `dirs` under `root`: (number of files scanned, findings sorted by path and line)."""
    findings: list[Finding] = []
    scanned = 0
    for path in iter_files(root, dirs):
        rel = path.relative_to(root)
        if path.suffix == ".py":
            scanned += 1
            findings.extend(scan_python(path, rel))
        elif is_shell_script(path):
            scanned += 1
            findings.extend(shell_markers(path.read_text(encoding="utf-8", errors="replace"), str(rel)))
    return scanned, sorted(set(findings))


def main(argv: Sequence[str] | None = None) -> int:
    parser = scan_parser(
        __doc__.split("\n\n", 1)[0] if __doc__ else None, "project root to scan (default: this checkout)"
    )
    parser.add_argument("dirs", nargs="*", default=list(SCANNED_DIRS), help="directories under the root")
    args = parser.parse_args(argv)
    return findings_report("no-fake scan", *scan(args.root.resolve(), args.dirs))


if __name__ == "__main__":
    sys.exit(main())
