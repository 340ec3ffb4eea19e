"""Admission conditions: a boolean CEL expression over a subject token's verified claims.

A trusted issuer may carry a condition (``TrustedTokenIssuer.condition``); the subject-token
routine evaluates it after every claim check (step ``condition``) and refuses the token unless
it yields exactly ``true``. False, a non-boolean result and any evaluation error (a missing
claim, a wrong type) all refuse: a condition never admits by accident.

The expression sees one variable, ``claims``: the token's payload as a map
(``claims.repository_owner_id == "123456"``). It is evaluated with the
``common-expression-language`` package (Rust bindings, chosen by measurement: docs/workload-identity.md).

Cost is bounded at save time, since the package has no evaluation budget of its own. The
claims are bounded by the token size (``SUBJECT_TOKEN_MAX_BYTES``), so an expression's cost is
linear in claims × expression size as long as it cannot multiply work over the claims:

- at most ``MAX_LENGTH`` characters (the parser also limits nesting depth);
- comprehension macros: only ``all``, ``exists`` and ``exists_one`` (yes/no answers; ``map`` and
  ``filter`` build lists), never nested, and their body may read only the element variable and
  literals, not ``claims`` (else ``claims.l.exists(x, x in claims.l + claims.l)`` is quadratic);
- ``matches`` only as a method with a literal pattern (a pattern taken from a claim would let a
  token choose the regular expression to compile);
- variables: ``claims`` and the macros' element variables only.
"""

import re
from dataclasses import dataclass

import cel

#: Longest accepted expression, in characters.
MAX_LENGTH = 2000
#: The comprehension macros a condition may use (each answers yes or no).
ALLOWED_MACROS = frozenset({"all", "exists", "exists_one"})
#: Macros refused: they build lists whose size is not bounded by the expression.
REFUSED_MACROS = frozenset({"map", "filter", "transformList", "transformMap", "transformMapEntry"})
VARIABLE = "claims"

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SPACE = re.compile(r"\s+")
_NUMBER = re.compile(r"(?:0x[0-9A-Fa-f]+|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)[uU]?")


class ConditionError(ValueError):
    """The expression is not an acceptable condition; ``str()`` is a safe sentence for administrators."""


@dataclass(frozen=True)
class _Token:
    kind: str  # "ident", "string", "punct", "number"
    text: str


def _string_end(source, start):
    """Index just past the string literal starting at ``start`` (after any r/b prefix)."""
    raw = False
    i = start
    while source[i] in "rRbB":
        raw = raw or source[i] in "rR"
        i += 1
    quote = source[i:i + 3] if source[i:i + 3] in ('"""', "'''") else source[i]
    i += len(quote)
    while i < len(source):
        if source.startswith(quote, i):
            return i + len(quote)
        if source[i] == "\\" and not raw:
            i += 2
            continue
        if len(quote) == 1 and source[i] == "\n":
            break
        i += 1
    raise ConditionError("A string literal in the condition is not closed.")


def _tokens(source):
    """The expression's tokens: enough of CEL's lexical grammar to see names, calls and literals."""
    i, tokens = 0, []
    while i < len(source):
        ch = source[i]
        if ch.isspace():
            i = _SPACE.match(source, i).end()
            continue
        if ch == "/" and source.startswith("//", i):  # a comment, to the end of the line
            end = source.find("\n", i)
            i = len(source) if end < 0 else end
            continue
        ident = _IDENT.match(source, i)
        if ident:
            word = ident.group()
            rest = source[ident.end():ident.end() + 1]
            if rest in ("'", '"') and word.lower() in ("r", "b", "rb", "br"):
                end = _string_end(source, i)
                tokens.append(_Token("string", source[i:end]))
                i = end
                continue
            tokens.append(_Token("ident", word))
            i = ident.end()
            continue
        if ch in "'\"":
            end = _string_end(source, i)
            tokens.append(_Token("string", source[i:end]))
            i = end
            continue
        number = _NUMBER.match(source, i)
        if number:
            tokens.append(_Token("number", number.group()))
            i = number.end()
            continue
        tokens.append(_Token("punct", ch))
        i += 1
    return tokens


def _claims_read(tokens):
    """The claim names the expression reads (``claims.x``, ``claims["x"]``), or None when it uses ``claims`` otherwise.

    Evaluation then converts only those claims to CEL values, not the whole payload: the
    conversion, not the expression, is most of an evaluation's cost on a token with many claims.
    """
    names = set()
    for index, token in enumerate(tokens):
        if token.kind != "ident" or token.text != VARIABLE or (index and tokens[index - 1].text == "."):
            continue
        after = tokens[index + 1: index + 4]
        if len(after) >= 2 and after[0].text == "." and after[1].kind == "ident":
            if len(after) == 3 and after[2].text == "(":  # a macro over the whole map: claims.all(k, ...)
                return None
            names.add(after[1].text)
        elif (len(after) == 3 and after[0].text == "[" and after[1].kind == "string"
              and after[1].text[0] in "'\"" and after[2].text == "]"):
            literal = after[1].text
            inner = literal[3:-3] if literal[:3] in ('"""', "'''") else literal[1:-1]
            if "\\" in inner:
                return None
            names.add(inner)
        else:
            return None
    return frozenset(names)


def _check_shape(tokens):
    """The save-time cost rules of the module docstring; returns the macros' element variables."""
    bound = set()
    depth = 0
    macro_depths = []  # paren depth at which each open macro's argument list started
    for index, token in enumerate(tokens):
        previous = tokens[index - 1] if index else None
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        is_call = following is not None and following.text == "("
        is_method = previous is not None and previous.text == "."
        if token.kind == "punct":
            if token.text in "([{":
                depth += 1
            elif token.text in ")]}":
                depth -= 1
                while macro_depths and depth < macro_depths[-1]:
                    macro_depths.pop()
            continue
        if token.kind != "ident":
            continue
        if macro_depths and token.text == VARIABLE:
            raise ConditionError(
                "Inside all(), exists() or exists_one() the condition may read only the element variable, not claims."
            )
        if is_call and is_method and token.text in REFUSED_MACROS:
            raise ConditionError(f"{token.text}() is not available in a condition; use all(), exists() or exists_one().")
        if is_call and token.text == "matches":
            pattern = tokens[index + 2] if index + 2 < len(tokens) else None
            if not is_method or pattern is None or pattern.kind != "string":
                raise ConditionError("matches() takes a literal pattern, written as claims.x.matches(\"...\").")
        if is_call and is_method and token.text in ALLOWED_MACROS:
            if macro_depths:
                raise ConditionError("all(), exists() and exists_one() cannot be nested in a condition.")
            element = tokens[index + 2] if index + 2 < len(tokens) else None
            if element is not None and element.kind == "ident":
                bound.add(element.text)
            macro_depths.append(depth + 1)
    return bound


@dataclass(frozen=True)
class Condition:
    """A compiled condition: the CEL program and the claims it reads (None: all of them)."""

    program: object
    reads: frozenset | None


def compile_condition(expression):
    """A compiled Condition for ``expression``; raises ConditionError.

    Applies every save-time rule (see the module docstring); the caller stores the expression
    and keeps the program with the registry's issuer (compiled once per change).
    """
    if not isinstance(expression, str) or not expression.strip():
        raise ConditionError("The condition is empty.")
    if len(expression) > MAX_LENGTH:
        raise ConditionError(f"The condition is longer than {MAX_LENGTH} characters.")
    if any(ord(ch) < 0x20 and ch not in "\n\t\r" for ch in expression) or "\x7f" in expression:
        raise ConditionError("The condition contains control characters.")
    tokens = _tokens(expression)
    bound = _check_shape(tokens)
    try:
        program = cel.compile(expression)
    except Exception:  # the package raises ValueError for syntax errors; never let another type through
        raise ConditionError("The condition is not a valid CEL expression.") from None
    unknown = set(program.variables()) - bound - {VARIABLE}
    if unknown:
        raise ConditionError(
            "The condition may read only the variable claims (e.g. claims.sub); it names "
            + ", ".join(sorted(unknown)[:5]) + "."
        )
    return Condition(program, _claims_read(tokens))


#: Stands for a stored condition that no longer compiles (e.g. saved under other rules): it refuses every token.
BROKEN = object()


def compile_stored(expression):
    """The program for a stored condition: None when there is none, BROKEN when it does not compile."""
    if not expression:
        return None
    try:
        return compile_condition(expression)
    except ConditionError:
        return BROKEN


def program_for(issuer):
    """The issuer's compiled condition: the one the registry compiled with it, else compiled now."""
    program = getattr(issuer, "admission_program", _UNSET)
    return compile_stored(issuer.condition) if program is _UNSET else program


_UNSET = object()


def evaluate(condition, claims):
    """``(True, "")`` when the Condition holds for ``claims``; else ``(False, why)``.

    ``why`` is a short safe phrase for administrators (no claim value). Any error refuses.
    """
    if condition is BROKEN:
        return False, "the stored condition is not a valid condition (edit it)"
    if condition.reads is not None:
        claims = {name: claims[name] for name in condition.reads if name in claims}
    try:
        result = condition.program.execute({VARIABLE: claims})
    except KeyError:
        return False, "the condition reads a claim the token does not have"
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException:  # type errors, conversions, overflow; a Rust panic arrives as a BaseException (pyo3)
        return False, "the condition could not be evaluated on these claims (a wrong type?)"
    if result is True:
        return True, ""
    if result is False:
        return False, "the condition is false for this token's claims"
    return False, "the condition did not yield true or false"


# -- the guided form: common conditions written for the administrator ---------------------------

#: Operators of the guided form → how each writes its clause.
GUIDED_OPERATORS = {
    "equals": "equals",
    "one_of": "is one of",
    "starts_with": "starts with",
}

_CLAIM_NAME = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]{0,99}\Z")


def _literal(value):
    """A CEL string literal for ``value`` (JSON-style escaping is valid CEL)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return '"' + "".join(ch if ord(ch) >= 0x20 else "\\u%04x" % ord(ch) for ch in escaped) + '"'


def guided_clause(claim, operator, values):
    """One clause for the guided form: ``claims.<claim>`` equals / is one of / starts with ``values``.

    ``values``: a list of strings (one for equals and starts with). Raises ConditionError.
    """
    if not _CLAIM_NAME.match(claim or ""):
        raise ConditionError("A claim name is letters, digits and underscores, starting with a letter.")
    values = [v for v in (values or []) if v != ""]
    if not values:
        raise ConditionError("Give the value to compare the claim with.")
    target = f"claims.{claim}"
    if operator == "equals":
        if len(values) != 1:
            raise ConditionError("equals takes one value; use is one of for several.")
        return f"{target} == {_literal(values[0])}"
    if operator == "one_of":
        return f"{target} in [{', '.join(_literal(v) for v in values)}]"
    if operator == "starts_with":
        if len(values) != 1:
            raise ConditionError("starts with takes one value.")
        return f"{target}.startsWith({_literal(values[0])})"
    raise ConditionError("Choose equals, is one of or starts with.")


def guided_condition(clauses):
    """The condition for a list of ``(claim, operator, values)``: every clause must hold."""
    return " && ".join(guided_clause(*clause) for clause in clauses)
