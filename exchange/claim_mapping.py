"""Claim mapping: which claims of a trusted issuer's subject tokens are carried into the tokens we issue.

Per trusted issuer, an allow-list (``TrustedTokenIssuer.claim_mappings``), each entry::

    {"source": "email", "target": "email", "type": "string", "required": false}

``source`` is a top-level claim name of the subject token, taken literally (``"a.b"`` is the claim
named ``a.b``, never a path into ``a``); ``target`` the claim name in the issued token; ``type``
one of ``TYPES``; ``required`` whether a subject token without a valid value is refused.
The default, an empty list, carries nothing but ``sub`` (as before).

Two functions, one implementation each:

- ``validate_mappings`` (configuration time; the model's validator, so the console, the API and
  the commands refuse the same things): shapes, sizes, and never a registered or protocol claim
  as a target (``RESERVED_TARGETS``, compared case-insensitively);
- ``map_claims`` (exchange time; a step of subject_token.py, so *Test a token*, ``explain_token``
  and the token-validations API preview it): the values, typed and bounded. A value of the wrong
  type or size refuses the exchange when the mapping is required (``mapped_claim_invalid``;
  ``mapped_claim_missing`` when absent) and is dropped when it is optional: an optional claim is
  a convenience, and one upstream user's odd value should not lock them out. Together the mapped
  claims stay under ``MAX_TOTAL_BYTES`` (``mapped_claims_too_large`` otherwise).
"""

import json
import math
import re
import unicodedata

#: The expected types of a mapped claim's value.
TYPES = {
    "string": "a string",
    "string_list": "a list of strings",
    "boolean": "a boolean",
    "number": "a number",
}

#: Claims the server sets or that carry protocol meaning (RFC 7519, 8693, 9068, 7662, 9493, 7800,
#: OpenID Connect Core): never a mapping's target, whatever the case.
RESERVED_TARGETS = frozenset({
    # RFC 7519 registered claims
    "iss", "sub", "aud", "exp", "nbf", "iat", "jti",
    # RFC 8693 / RFC 9068 / RFC 6749 / RFC 9493 / RFC 7800
    "client_id", "scope", "scp", "act", "may_act", "cnf", "sub_id", "authorization_details",
    # OpenID Connect Core: authentication facts about a sign-in here
    "auth_time", "nonce", "azp", "acr", "amr", "at_hash", "c_hash", "s_hash", "sid",
    # RFC 7662 introspection members (introspection shows mapped claims beside them)
    "active", "token_type", "username",
    # JOSE header names and SET/logout markers a validator might read from the claims
    "typ", "cty", "alg", "kid", "events", "txn",
})

MAX_MAPPINGS = 20
MAX_NAME_LENGTH = 100
MAX_STRING_LENGTH = 1024
MAX_LIST_ITEMS = 50
MAX_TOTAL_BYTES = 8192
#: Numbers beyond ±2^53 lose precision in JavaScript and most JSON parsers.
MAX_SAFE_INTEGER = 2**53 - 1

_KEYS = {"source", "target", "type", "required"}
#: A target name: printable ASCII without spaces, quotes or backslashes (RFC 7519 §4.3 collision-resistant
#: names such as https://example.com/tenant fit); ASCII so no look-alike of a reserved name gets through.
_TARGET = re.compile(r"\A[!#-\[\]-~]+\Z")


class MappingError(ValueError):
    """A mapping configuration that is refused; the message is a fixed sentence (names only the index)."""


def _source_problem(source):
    if not isinstance(source, str) or not source:
        return "the source claim must be a non-empty string"
    if len(source) > MAX_NAME_LENGTH:
        return f"the source claim is longer than {MAX_NAME_LENGTH} characters"
    if source != source.strip() or any(unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zl", "Zp") for ch in source):
        return "the source claim has surrounding spaces or control characters"
    return None


def _target_problem(target):
    if not isinstance(target, str) or not target:
        return "the target claim must be a non-empty string"
    if len(target) > MAX_NAME_LENGTH:
        return f"the target claim is longer than {MAX_NAME_LENGTH} characters"
    if not _TARGET.match(target):
        return "the target claim must be printable ASCII without spaces, quotes or backslashes"
    if target.lower() in RESERVED_TARGETS:
        return f"the target claim {target} is set by this server and cannot be mapped"
    return None


def validate_mappings(value):
    """Refuse (MappingError) a mapping list that is not well-formed, too large or targets a reserved claim.

    Returns the list normalized (``required`` present as a boolean).
    """
    if not isinstance(value, list):
        raise MappingError("Give the claim mappings as a list.")
    if len(value) > MAX_MAPPINGS:
        raise MappingError(f"At most {MAX_MAPPINGS} claim mappings per issuer.")
    normalized, targets = [], set()
    for index, entry in enumerate(value, start=1):
        if not isinstance(entry, dict) or not {"source", "target", "type"} <= set(entry) or set(entry) - _KEYS:
            raise MappingError(f"Mapping {index}: give source, target, type and optionally required.")
        problem = _source_problem(entry["source"]) or _target_problem(entry["target"])
        if problem is None and entry["type"] not in TYPES:
            problem = f"the type must be one of {', '.join(TYPES)}"
        required = entry.get("required", False)
        if problem is None and not isinstance(required, bool):
            problem = "required must be true or false"
        if problem is None and entry["target"].lower() in targets:
            problem = f"the target claim {entry['target']} is mapped twice"
        if problem is not None:
            raise MappingError(f"Mapping {index}: {problem}.")
        targets.add(entry["target"].lower())
        normalized.append({"source": entry["source"], "target": entry["target"], "type": entry["type"],
                           "required": required})
    return normalized


def _text(value):
    """A string every store takes: bounded, no NUL (PostgreSQL's jsonb refuses it), no lone surrogate."""
    if not isinstance(value, str) or len(value) > MAX_STRING_LENGTH or "\x00" in value:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _typed(kind, value):
    """``value`` if it is of ``kind`` and within bounds, else None."""
    if kind == "string":
        return value if _text(value) else None
    if kind == "string_list":
        ok = isinstance(value, list) and len(value) <= MAX_LIST_ITEMS and all(_text(item) for item in value)
        return list(value) if ok else None
    if kind == "boolean":
        return value if isinstance(value, bool) else None
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value if abs(value) <= MAX_SAFE_INTEGER else None
    return None


class MappingRefused(Exception):
    """A subject token whose claims the mapping refuses: ``cause`` (a subject_token.CAUSES key) and a detail."""

    def __init__(self, cause, detail):
        super().__init__(cause)
        self.cause, self.detail = cause, detail


def map_claims(mappings, claims):
    """The claims to add to the issued token, from the verified ``claims`` of a subject token.

    Returns ``(mapped, notes)``: ``mapped`` the target → value dict, ``notes`` one fixed phrase per
    mapping (for the validation report; never a claim's value). Raises MappingRefused.
    """
    mapped, notes = {}, []
    for mapping in mappings or ():
        source, target, kind = mapping["source"], mapping["target"], mapping["type"]
        if source not in claims:
            if mapping.get("required"):
                raise MappingRefused("mapped_claim_missing", f"{source} is missing (required)")
            notes.append(f"{source}: absent, not carried")
            continue
        value = _typed(kind, claims[source])
        if value is None:
            if mapping.get("required"):
                raise MappingRefused("mapped_claim_invalid", f"{source} is not {TYPES[kind]} within the size limits "
                                                             "(required)")
            notes.append(f"{source}: not {TYPES[kind]} within the size limits, dropped")
            continue
        mapped[target] = value
        notes.append(f"{source} → {target}")
    if mapped and len(json.dumps(mapped, separators=(",", ":"))) > MAX_TOTAL_BYTES:
        raise MappingRefused("mapped_claims_too_large", f"the mapped claims exceed {MAX_TOTAL_BYTES} bytes")
    return mapped, notes
