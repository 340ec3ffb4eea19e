"""The condition language's save-time rules (cost bound, variables) and evaluation: unit tests of exchange/conditions.py."""

import pytest

from exchange import conditions

GITHUB_CLAIMS = {
    "iss": "https://token.actions.githubusercontent.com", "sub": "repo:acme/app:ref:refs/heads/main",
    "repository_owner_id": "424242", "repository_owner": "acme", "ref": "refs/heads/main",
    "event_name": "push", "groups": ["a", "b"], "run_attempt": "1",
}


@pytest.mark.parametrize("expression", [
    'claims.repository_owner_id == "424242"',
    'claims.repository_owner_id == "424242" && claims.ref.startsWith("refs/heads/")',
    'claims.event_name in ["push", "workflow_dispatch"]',
    'claims.groups.exists(g, g == "a")',
    'claims.groups.all(g, g.startsWith("a") || g == "b") && claims.groups.exists_one(g, g == "b")',
    'has(claims.repository_owner) && claims.sub.matches("^repo:acme/")',
    '// a comment\nclaims["ref"] == "refs/heads/main"',
    "claims.ref == r'refs/heads/main' && claims.sub != '''x'''",
])
def test_typical_conditions_compile_and_hold(expression):
    program = conditions.compile_condition(expression)
    assert conditions.evaluate(program, GITHUB_CLAIMS) == (True, "")


@pytest.mark.parametrize(("expression", "phrase"), [
    ("", "empty"),
    ("   ", "empty"),
    ('claims.sub == "' + "x" * conditions.MAX_LENGTH + '"', "longer than"),
    # The cost bound: no nested comprehensions (quadratic in the claims) ...
    ('claims.groups.exists(a, claims.groups.exists(b, a == b))', "only the element variable"),
    ('claims.groups.all(a, [1, 2].exists(b, b == 1))', "cannot be nested"),
    # ... no list-building macros ...
    ('claims.groups.map(g, g + g).size() > 0', "map() is not available"),
    ('claims.groups.filter(g, g == "a").size() == 1', "filter() is not available"),
    # ... no claims inside a comprehension (claims.l.exists(x, x in claims.l + claims.l) is quadratic) ...
    ('claims.groups.exists(x, x in claims.groups + claims.groups)', "only the element variable"),
    # ... and no pattern taken from the token.
    ("claims.sub.matches(claims.pattern)", "literal pattern"),
    ('matches(claims.sub, "^a")', "literal pattern"),
    ("claim.sub == 'x'", "may read only the variable claims"),
    ("now > 0", "may read only the variable claims"),
    ("claims.sub ==", "not a valid CEL expression"),
    ('"unclosed', "not closed"),
    ("claims.sub == 'a'\x00", "control characters"),
    ("(" * 200 + "true" + ")" * 200, "not a valid CEL expression"),
])
def test_conditions_outside_the_rules_are_refused_at_save_time(expression, phrase):
    with pytest.raises(conditions.ConditionError) as caught:
        conditions.compile_condition(expression)
    assert phrase in str(caught.value)


@pytest.mark.parametrize(("expression", "why"), [
    ('claims.repository_owner_id == "1"', "false"),
    ('claims.missing_claim == "424242"', "does not have"),  # a missing claim refuses, never admits
    ("claims.repository_owner_id == 424242", "false"),  # a string claim compared with a number
    ("claims.repository_owner_id > 5", "could not be evaluated"),  # wrong type for the operator
    ("int(claims.repository_owner) == 1", "could not be evaluated"),
    ("claims.ref", "did not yield true or false"),  # not a boolean
    ("size(claims.groups)", "did not yield true or false"),
])
def test_anything_but_true_refuses(expression, why):
    ok, detail = conditions.evaluate(conditions.compile_condition(expression), GITHUB_CLAIMS)
    assert not ok
    assert why in detail
    assert "424242" not in detail and "acme" not in detail  # never a claim value


def test_a_stored_condition_that_no_longer_compiles_refuses_every_token():
    program = conditions.compile_stored("claims.groups.map(g, g)")
    assert program is conditions.BROKEN
    assert conditions.evaluate(program, GITHUB_CLAIMS)[0] is False
    assert conditions.compile_stored("") is None


@pytest.mark.parametrize("value", ['x" || true || "', "a\\", 'quote"', "new\nline", "tab\t", "\u00e9t\u00e9", "\x01"])
def test_the_guided_form_writes_literals_that_cannot_be_escaped_from(value):
    expression = conditions.guided_condition([("repository_owner", "equals", [value])])
    program = conditions.compile_condition(expression)
    assert conditions.evaluate(program, {"repository_owner": value}) == (True, "")
    assert conditions.evaluate(program, {"repository_owner": value + "z"})[0] is False


def test_the_guided_operators():
    assert conditions.guided_condition([
        ("repository_owner_id", "equals", ["424242"]),
        ("event_name", "one_of", ["push", "workflow_dispatch"]),
        ("ref", "starts_with", ["refs/heads/"]),
    ]) == ('claims.repository_owner_id == "424242" && claims.event_name in ["push", "workflow_dispatch"] '
           '&& claims.ref.startsWith("refs/heads/")')


@pytest.mark.parametrize("clause", [
    ("sub) || (true", "equals", ["x"]),  # a claim name is an identifier, never code
    ("sub", "equals", []),
    ("sub", "equals", ["a", "b"]),
    ("sub", "contains", ["a"]),
])
def test_the_guided_form_refuses_what_it_cannot_write_safely(clause):
    with pytest.raises(conditions.ConditionError):
        conditions.guided_clause(*clause)


@pytest.mark.parametrize(("expression", "reads"), [
    ('claims.repository_owner_id == "424242" && claims.ref.startsWith("refs/")', {"repository_owner_id", "ref"}),
    ('claims["repository_owner_id"] == "424242"', {"repository_owner_id"}),
    ("has(claims.missing) || claims.groups.exists(g, g == 'a')", {"missing", "groups"}),
    ("size(claims) > 3", None),  # claims used as a whole: every claim is passed
    ('"ref" in claims', None),
    ('claims[r"ref"] == "refs/heads/main"', None),
    # A macro over the map itself sees every claim name (projecting would make all() admit wrongly).
    ('!claims.all(k, k != "sub")', None),
    ('claims.exists(k, k == "run_attempt")', None),
])
def test_only_the_claims_read_are_converted_and_the_result_is_the_same(expression, reads):
    condition = conditions.compile_condition(expression)
    assert condition.reads == (None if reads is None else frozenset(reads))
    assert conditions.evaluate(condition, GITHUB_CLAIMS) == (True, "")


@pytest.mark.parametrize("value", [2**70, -(2**70), "\ud800", [[[[["deep"]]]]], {"nested": {"map": [1, "x"]}}, None, 1e308])
def test_hostile_claim_values_refuse_without_raising(value):
    for expression in ('claims.ref == "refs/heads/main"', 'claims.ref.startsWith("refs/")', "claims.ref == 1"):
        ok, detail = conditions.evaluate(conditions.compile_condition(expression), {"ref": value})
        assert ok is False and detail
