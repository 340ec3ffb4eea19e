"""The mutations: every small change of one kind at one place of a module, found with ``ast``.

A mutant replaces one node's source text (an expression, or a statement by ``pass``) and
leaves every other byte of the file as it was, so line numbers stay those of the original.
Nothing here writes a file: ``Mutant.apply`` returns the mutated source as a string.

Kinds (the ones that found the survivors of issue 22):

- ``comparison``: ``<`` ↔ ``<=``, ``>`` ↔ ``>=``, ``==`` ↔ ``!=``, ``in`` ↔ ``not in``, ``is`` ↔ ``is not``
- ``boolean``: ``and`` ↔ ``or``
- ``raise`` / ``return``: the statement removed (replaced by ``pass``)
- ``constant``: an int or float nudged by one, ``True`` ↔ ``False``, a string or bytes changed
- ``condition``: the test of an ``if``, a conditional expression or a comprehension filter
  forced ``True`` and ``False``

Not mutated: docstrings, annotations, decorators, f-string parts and the arguments of ``log.*``
calls (declarations and what a log line says, not behaviour a test pins).
"""

import ast
import copy
import dataclasses

KINDS = ("comparison", "boolean", "raise", "return", "constant", "condition")

_FLIPS = {
    ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In,
    ast.Is: ast.IsNot, ast.IsNot: ast.Is,
}
_SHOWN = 100  # characters of a mutated expression shown (and matched) before it is cut with "…"


def shorten(text):
    """One line of at most _SHOWN characters: how a mutation is printed and named in docs/testing.md."""
    text = " ".join(text.split())
    return text if len(text) <= _SHOWN else text[:_SHOWN - 1] + "…"


@dataclasses.dataclass(frozen=True)
class Mutant:
    """One change: ``replacement`` instead of the source between ``start`` and ``end`` ((line, byte column))."""

    path: str  # as given to mutants_of, e.g. "exchange/grant.py"
    function: str  # the enclosing def (Class.method), or "<module>"
    kind: str
    before: str  # the original node, unparsed and shortened
    after: str  # the mutated node, unparsed and shortened
    start: tuple
    end: tuple
    replacement: str
    occurrence: int = 1  # the same change in the same function, counted in source order

    @property
    def name(self):
        """How docs/testing.md names the mutation: ``before → after``, with ``#n`` from the second time on."""
        return f"{self.before} → {self.after}" + (f" #{self.occurrence}" if self.occurrence > 1 else "")

    @property
    def line(self):
        return self.start[0]

    @property
    def label(self):
        return f"{self.path}:{self.line} [{self.kind}] {self.name}"

    def apply(self, source):
        """The mutated module source (a str); line numbers are unchanged."""
        lines = source.encode("utf-8").splitlines(keepends=True)
        offsets = [0]
        for line in lines:
            offsets.append(offsets[-1] + len(line))
        data = b"".join(lines)
        start = offsets[self.start[0] - 1] + self.start[1]
        end = offsets[self.end[0] - 1] + self.end[1]
        # Blank lines keep every later line where it was when a multi-line node becomes one line.
        padding = b"\n" * (self.end[0] - self.start[0])
        return (data[:start] + self.replacement.encode("utf-8") + padding + data[end:]).decode("utf-8")


def _docstring_nodes(tree):
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                found.add(id(first.value))
    return found


def _skipped_subtrees(tree):
    """Ids of nodes never mutated: annotations, decorators, f-strings, log calls' arguments (and all inside)."""
    roots = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            roots += node.decorator_list
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            args = node.args
            roots += [a.annotation for a in args.posonlyargs + args.args + args.kwonlyargs if a.annotation]
            roots += [a.annotation for a in (args.vararg, args.kwarg) if a is not None and a.annotation]
            if node.returns:
                roots.append(node.returns)
        elif isinstance(node, ast.AnnAssign):
            roots.append(node.annotation)
        elif isinstance(node, ast.JoinedStr):
            roots.append(node)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and isinstance(node.func.value, ast.Name) and node.func.value.id == "log"):
            roots += node.args + [k.value for k in node.keywords]
    return {id(sub) for root in roots for sub in ast.walk(root)}


def _nudged(value):
    """The constants a ``constant`` mutation puts in place of ``value`` (none for None and Ellipsis)."""
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, (int, float)):
        return [value + 1]
    if isinstance(value, str):
        return ["XX" + value + "XX"]
    if isinstance(value, bytes):
        return [b"XX" + value + b"XX"]
    return []


class _Finder(ast.NodeVisitor):
    def __init__(self, path, tree):
        self.path = path
        self.scope = []
        self.found = []
        self.skip = _skipped_subtrees(tree) | _docstring_nodes(tree)

    def _add(self, kind, node, new_node=None, replacement=None):
        if replacement is None:
            replacement = "(" + ast.unparse(new_node) + ")"
        after = "pass" if new_node is None else ast.unparse(new_node)
        self.found.append(Mutant(
            path=self.path, function=".".join(self.scope) or "<module>", kind=kind,
            before=shorten(ast.unparse(node)), after=shorten(after),
            start=(node.lineno, node.col_offset), end=(node.end_lineno, node.end_col_offset),
            replacement=replacement,
        ))

    def _scoped(self, node):
        self.scope.append(node.name)
        self.generic_visit(node)
        self.scope.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = _scoped

    def visit(self, node):
        if id(node) in self.skip:
            return
        super().visit(node)

    def visit_Compare(self, node):
        for i, op in enumerate(node.ops):
            flipped = _FLIPS.get(type(op))
            if flipped is not None:
                new = copy.deepcopy(node)
                new.ops[i] = flipped()
                self._add("comparison", node, new)
        self.generic_visit(node)

    def visit_BoolOp(self, node):
        new = copy.deepcopy(node)
        new.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        self._add("boolean", node, new)
        self.generic_visit(node)

    def visit_Raise(self, node):
        self._add("raise", node, replacement="pass")
        self.generic_visit(node)

    def visit_Return(self, node):
        self._add("return", node, replacement="pass")
        self.generic_visit(node)

    def visit_Constant(self, node):
        for value in _nudged(node.value):
            self._add("constant", node, ast.Constant(value))

    def _force(self, test):
        if isinstance(test, ast.Constant) or id(test) in self.skip:
            return
        for value in (True, False):
            self._add("condition", test, ast.Constant(value))

    def visit_If(self, node):
        self._force(node.test)
        self.generic_visit(node)

    def visit_IfExp(self, node):
        self._force(node.test)
        self.generic_visit(node)

    def visit_comprehension(self, node):
        for test in node.ifs:
            self._force(test)
        self.generic_visit(node)


def mutants_of(path, source):
    """Every mutant of ``source`` (the text of the module at ``path``) that still compiles, in source order."""
    tree = ast.parse(source)
    finder = _Finder(path, tree)
    finder.visit(tree)
    valid = []
    for mutant in finder.found:
        # One line replaced by a parenthesized expression or by ``pass`` always parses; several lines
        # joined by a backslash continuation may not.
        if mutant.start[0] != mutant.end[0]:
            try:
                compile(mutant.apply(source), path, "exec")
            except SyntaxError:
                continue
        valid.append(mutant)
    counts = {}
    numbered = []
    for mutant in sorted(valid, key=lambda m: (m.start, m.kind, m.after)):
        same = (mutant.function, mutant.before, mutant.after)
        counts[same] = counts.get(same, 0) + 1
        numbered.append(dataclasses.replace(mutant, occurrence=counts[same]))
    return numbered
