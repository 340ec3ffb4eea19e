"""Subject-token validation: the one routine that decides whether a third-party JWT is trusted.

Used by the token-exchange grant, the console's "Test a token" page, the
``token-validations`` API and the ``explain_token`` command alike. It returns a
``Report`` of the checks it ran — in this order — and, on success, the
verified claims; on failure it raises ``SubjectTokenRejected`` with a stable
cause code and the same report.

1. size and shape (compact JWS, strict base64url, strict UTF-8 JSON objects)
2. header: ``alg`` a string; ``crit``, ``b64``, ``zip``, ``enc``, nested ``cty`` refused
3. ``iss`` (unverified, only to pick the issuer) → a registered, enabled issuer that
   the requesting application may exchange (its links, see ``TrustedTokenIssuer.applications``)
   ``typ``: never another JWT kind's type (nor an ``events`` claim: a SET or logout token);
   the issuer's required type when it names one; what the token says it is (an ``at+jwt``
   access token, an ID token) against the declared ``subject_token_type``
4. ``alg`` in that issuer's allow-list (never ``none``, never HS*)
5. a key from that issuer's own key source (JWKS by ``kid``, or its certificates)
6. signature
7. ``exp`` (required), ``nbf``, ``iat`` (maximum age), with the issuer's clock skew
8. ``aud`` contains CONSOLE_ISSUER or the issuer's alias
9. ``sub`` a non-empty, printable string
   ``act`` and ``may_act`` (RFC 8693 §4.1, §4.4), when present: well-formed, bounded (MAX_ACT_DEPTH)
10. the issuer's admission condition (a CEL expression over the verified claims; conditions.py),
    when it has one: anything but ``true`` refuses
11. the issuer's claim mapping (claim_mapping.py): the claims carried into the issued token,
    typed and bounded; a required one missing or invalid refuses
12. ``jti`` replay, when the issuer asks for it (the database's record of consumed ``jti``
    values, with or without Redis — shared_cache.py)
"""

import base64
import hashlib
import json
import logging
import math
import re
import time
import unicodedata
from dataclasses import dataclass, field

from jwt.algorithms import get_default_algorithms

from . import claim_mapping, conditions, key_sources, presets
from .conf import ASYMMETRIC_ALGORITHMS, exchange_settings, project_settings
from .models import normalize_token_type
from .ops import outage
from .protocol import ACCESS_TOKEN_TYPE, ID_TOKEN_TYPE, JWT_TYPE
from .registry import registry
from .shared_cache import replay_record

log = logging.getLogger(__name__)

#: A fixed, safe sentence per cause: the only text a client ever sees about a rejection.
CAUSES = {
    "malformed": "The subject token is not a well-formed signed JWT.",
    "unsupported_header": "The subject token uses a header parameter this server does not accept.",
    "unknown_issuer": "The subject token's issuer is not a trusted token issuer.",
    "issuer_disabled": "The subject token's issuer is disabled.",
    "issuer_not_allowed": "The subject token's issuer is not trusted for this client.",
    "wrong_type": "The subject token's type (typ) is not accepted.",
    "id_token_as_access_token": f"The subject token is an ID token; send it with subject_token_type {ID_TOKEN_TYPE}.",
    "type_mismatch": "The subject token is not of the given subject_token_type.",
    "algorithm_not_allowed": "The subject token's signing algorithm is not allowed for its issuer.",
    "key_source_unavailable": "The signing keys of the subject token's issuer could not be retrieved.",
    "unknown_key": "No signing key of the subject token's issuer matches the token.",
    "certificate_expired": "The certificate of the subject token's issuer is not currently valid.",
    "bad_signature": "The subject token's signature is invalid.",
    "missing_claim": "The subject token lacks a required claim.",
    "invalid_claim": "A claim in the subject token has an invalid value.",
    "expired": "The subject token has expired.",
    "not_yet_valid": "The subject token is not yet valid.",
    "too_old": "The subject token was issued too long ago.",
    "audience_mismatch": "The subject token is not intended for this server.",
    "condition_not_met": "The subject token does not meet the conditions set for its issuer.",
    "mapped_claim_missing": "The subject token lacks a claim its issuer's claim mapping requires.",
    "mapped_claim_invalid": "A claim the issuer's claim mapping requires has a value of the wrong type or size.",
    "mapped_claims_too_large": "The claims the issuer's claim mapping carries are too large.",
    "replayed": "The subject token has already been used.",
    "replay_check_unavailable": "The subject token's reuse could not be checked; try again later.",
    "invalid_delegation_claim": "The subject token's act or may_act claim is not valid.",
    "act_chain_too_deep": "The delegation chain (act) is longer than this server accepts.",
}

#: The same routine checks actor tokens (RFC 8693 §2.1, delegation): its sentences then name the actor token.
#: The grant records an actor token's cause as ``actor_<cause>`` on the exchange event.
ACTOR_CAUSES = {
    cause: sentence.replace("subject token", "actor token").replace("subject_token_type", "actor_token_type")
    for cause, sentence in CAUSES.items()
}
ACTOR_CAUSES["issuer_not_allowed"] = "The actor token's issuer is not accepted for delegation by this client."

#: The longest delegation chain (the actors nested in ``act``) a token may carry, received or issued.
MAX_ACT_DEPTH = 5
#: The longest ``iss`` inside ``act``/``may_act`` (as a trusted issuer's issuer value).
MAX_ACT_ISSUER_LENGTH = 512
ROLES = ("subject", "actor")

STEPS = (
    ("format", "Token format"),
    ("header", "Header"),
    ("issuer", "Trusted issuer"),
    ("type", "Token type (typ)"),
    ("algorithm", "Signing algorithm"),
    ("key", "Signing key"),
    ("signature", "Signature"),
    ("expiry", "Expiry (exp)"),
    ("not_before", "Not before (nbf)"),
    ("issued_at", "Issued at (iat) and age"),
    ("audience", "Audience (aud)"),
    ("subject", "Subject (sub)"),
    ("delegation", "Delegation (act, may_act)"),
    ("condition", "Admission condition"),
    ("claims", "Mapped claims"),
    ("replay", "Replay (jti)"),
)

#: JWT types that name another kind of JWT (RFC 8725 §3.11): never a subject token, whatever the issuer.
FOREIGN_TYPES = frozenset({
    "dpop+jwt", "secevent+jwt", "logout+jwt", "jwk-set+jwt", "token-introspection+jwt",
    "oauth-authz-req+jwt", "client-authentication+jwt", "entity-statement+jwt", "trust-chain+json",
    "jwt-vc", "vc+sd-jwt", "kb+jwt",
})

STEP_LABELS = dict(STEPS)

#: The subject_token_type values (RFC 8693 §3) a subject token may be declared as, and their short names.
TOKEN_TYPE_NAMES = {JWT_TYPE: "a JWT", ACCESS_TOKEN_TYPE: "an access token", ID_TOKEN_TYPE: "an ID token"}
SUBJECT_TOKEN_TYPES = tuple(TOKEN_TYPE_NAMES)

_SEGMENT = re.compile(r"\A[A-Za-z0-9_-]*\Z")
#: JSON may escape a lone surrogate ("\ud800"): such a string cannot be encoded, so no database, hash or page takes it.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_B64_VALUES = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")}
#: Bits of the last character that carry no data, by segment length modulo 4: canonical encodings leave them 0.
_UNUSED_BITS = {0: 0, 2: 0x0F, 3: 0x03}
_MAX_NUMERIC_DATE = 253402300799  # 9999-12-31T23:59:59Z
_MAX_KEY_TRIES = 10
_ALGORITHMS = {name: alg for name, alg in get_default_algorithms().items() if name in ASYMMETRIC_ALGORITHMS}


@dataclass
class Step:
    name: str
    label: str
    ok: bool | None  # None: not checked (an earlier step failed)
    detail: str = ""


@dataclass
class Report:
    steps: list = field(default_factory=list)
    header: dict | None = None
    claims: dict | None = None  # verified claims, or unverified ones for explanation
    issuer: object = None
    cause: str | None = None
    key_description: str = ""
    replay: "ReplayEntry | None" = None  # set when the issuer rejects reused jtis (see consume_replay)
    mapped_claims: dict = field(default_factory=dict)  # what the issued token carries beside sub (claim_mapping.py)
    role: str = "subject"  # or "actor": an actor token (RFC 8693 §2.1), checked by the same steps
    act_chain: list = field(default_factory=list)  # the token's act claim, outermost actor first: {"sub", "iss"}
    may_act: dict | None = None  # the token's may_act claim: {"sub", "iss"}

    @property
    def ok(self):
        return self.cause is None

    @property
    def description(self):
        return (ACTOR_CAUSES if self.role == "actor" else CAUSES).get(self.cause, "")

    def passed(self, name, detail=""):
        self.steps.append(Step(name, STEP_LABELS[name], True, detail))

    def as_dict(self):
        return {
            "valid": self.ok,
            "cause": self.cause,
            "description": self.description or None,
            "issuer": self.issuer.name if self.issuer is not None else None,
            "mapped_claims": self.mapped_claims,
            "steps": [
                {"name": s.name, "label": s.label, "ok": s.ok, "detail": s.detail} for s in self.steps
            ],
        }


@dataclass(frozen=True)
class ReplayEntry:
    """The replay record's entry for a subject token's jti: kept while the token could still be accepted."""

    key: str
    lifetime: int  # seconds


class SubjectTokenRejected(Exception):
    def __init__(self, cause, report):
        super().__init__(cause)
        self.cause = cause
        self.report = report

    @property
    def description(self):
        return self.report.description


def _fail(report, step, cause, detail):
    report.steps.append(Step(step, STEP_LABELS[step], False, detail))
    done = {s.name for s in report.steps}
    report.steps.extend(Step(name, label, None) for name, label in STEPS if name not in done)
    report.cause = cause
    raise SubjectTokenRejected(cause, report)


def _b64decode(segment):
    remainder = len(segment) % 4
    if not _SEGMENT.match(segment) or remainder == 1:
        raise ValueError
    # Only the canonical encoding is accepted: no stray bits in the last character.
    if remainder and _B64_VALUES[segment[-1]] & _UNUSED_BITS[remainder]:
        raise ValueError
    return base64.urlsafe_b64decode(segment + "=" * (-remainder % 4))


def _no_duplicates(pairs):
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError("duplicate member")
        obj[key] = value
    return obj


def _reject_constant(name):
    raise ValueError(name)


def _holds_lone_surrogate(value):
    """True if any string in the parsed JSON ``value`` (member names too, at any depth) has a lone surrogate."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _LONE_SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _json_object(raw):
    """A JSON object from strict UTF-8 text: no duplicate members, no NaN/Infinity, no lone surrogates."""
    text = raw.decode("utf-8")  # strict: no UTF-16, a BOM makes json.loads fail
    value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    if not isinstance(value, dict):
        raise ValueError
    # Strict UTF-8 cannot carry a surrogate, so only a \u escape can make one (RFC 8259 §8.2: not Unicode
    # text, and no database, hash or page takes it); without an escape there is nothing to walk.
    if "\\u" in text and _holds_lone_surrogate(value):
        raise ValueError("lone surrogate")
    return value


def _numeric_date(claims, name):
    """A NumericDate claim: a JSON number (not a bool or string) within a sane range, or None."""
    if name not in claims:
        return None
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(name)
    if not math.isfinite(value) or not 0 <= value <= _MAX_NUMERIC_DATE:
        raise ValueError(name)
    return value


def storable(text):
    """A string every store, hash and page can take: no NUL (PostgreSQL refuses it), no lone surrogate."""
    return "\x00" not in text and not _LONE_SURROGATE.search(text)


def _subject_problem(sub):
    if not isinstance(sub, str) or not sub:
        return "sub must be a non-empty string"
    if len(sub) > exchange_settings.MAX_SUBJECT_LENGTH:
        return f"sub is longer than {exchange_settings.MAX_SUBJECT_LENGTH} characters"
    if sub != sub.strip():
        return "sub has leading or trailing whitespace"
    if not (sub.isascii() and sub.isprintable()) and any(unicodedata.category(ch) in ("Cc", "Cs", "Cf") for ch in sub):
        return "sub contains control or formatting characters"
    return None


def find_issuer(iss):
    """The trusted issuer whose issuer value is exactly ``iss`` (case- and byte-exact), or None.

    Served from the in-process registry (invalidated on every change; see registry.py).
    """
    return registry.issuer(iss)


def verify_signature(signing_input, signature, alg, keys):
    """The first of ``keys`` whose ``alg`` signature over ``signing_input`` verifies, or None.

    ``alg`` must already be an allowed asymmetric algorithm and every key usable with it.
    """
    verifier = _ALGORITHMS[alg]
    for candidate in keys:
        try:
            if alg in candidate.algorithms and verifier.verify(signing_input, candidate.key, signature):
                return candidate
        except Exception:  # a malformed signature for this key type is just a failed check
            continue
    return None


REPLAY_MODES = ("consume", "check", "defer")


class _Validation:
    """One validation under way: its input, its report, and what the steps before learnt.

    Each step reads what earlier steps set here and sets what later ones read; on failure
    it raises through ``_fail``, which completes the report.
    """

    __slots__ = ("report", "token", "client", "now", "replay", "token_type", "segments", "header", "claims",
                 "signature",
                 "alg", "kid", "issuer", "keys", "exp", "iat")

    def __init__(self, token, client, now, replay, token_type=None, role="subject"):
        self.report = Report(role=role)
        self.token, self.client, self.now, self.replay = token, client, now, replay
        self.token_type = token_type


_STEP_CHECKS = {}


def _step(name):
    """Register the check of the step ``name`` (an entry of STEPS)."""
    def register(check):
        _STEP_CHECKS[name] = check
        return check
    return register


@_step("format")
def _check_format(v):
    """Size and shape, before any decoding work."""
    token, report = v.token, v.report
    if not isinstance(token, str) or not token:
        _fail(report, "format", "malformed", "the token is empty")
    if len(token) > exchange_settings.SUBJECT_TOKEN_MAX_BYTES:
        _fail(report, "format", "malformed", f"the token is longer than {exchange_settings.SUBJECT_TOKEN_MAX_BYTES} characters")
    segments = token.split(".")
    if len(segments) != 3:
        _fail(report, "format", "malformed", "a signed JWT has exactly three dot-separated parts")
    try:
        header = _json_object(_b64decode(segments[0]))
        claims = _json_object(_b64decode(segments[1]))
        signature = _b64decode(segments[2])
    except (ValueError, UnicodeDecodeError, RecursionError):
        _fail(report, "format", "malformed", "a part is not canonical base64url of a UTF-8 JSON object")
    v.segments, v.header, v.claims, v.signature = segments, header, claims, signature
    report.header, report.claims = header, claims
    report.passed("format", "compact JWS with three parts")


@_step("header")
def _check_header(v):
    """Header parameters we refuse rather than ignore."""
    header, report = v.header, v.report
    alg = header.get("alg")
    if not isinstance(alg, str) or not alg:
        _fail(report, "header", "malformed", "alg is missing or not a string")
    for name in ("crit", "b64", "zip", "enc"):
        if name in header:
            _fail(report, "header", "unsupported_header", f"the {name} header parameter is not accepted")
    cty = header.get("cty")
    if isinstance(cty, str) and cty.lower() in ("jwt", "application/jwt"):
        _fail(report, "header", "unsupported_header", "nested JWTs are not accepted")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        _fail(report, "header", "malformed", "kid is not a string")
    v.alg, v.kid = alg, kid
    report.passed("header", f"alg {alg}" + (f", kid {kid}" if kid else ""))


@_step("issuer")
def _check_issuer(v):
    """The issuer, chosen by the unverified iss: registered, enabled, and linked to the client."""
    report, client = v.report, v.client
    iss = v.claims.get("iss")
    if iss is None:
        _fail(report, "issuer", "missing_claim", "iss is missing")
    if not isinstance(iss, str) or not iss or not storable(iss):
        _fail(report, "issuer", "invalid_claim", "iss is not a non-empty string of Unicode text without NUL")
    issuer = find_issuer(iss)
    if issuer is None:
        _fail(report, "issuer", "unknown_issuer", "no trusted token issuer has this issuer value")
    v.issuer = report.issuer = issuer
    if not issuer.enabled:
        _fail(report, "issuer", "issuer_disabled", f"trusted token issuer {issuer.name} is disabled")
    if client is not None and report.role == "actor":
        # An actor token's issuer is chosen per application (Application.actor_issuers), not by the links.
        if not client.accepts_actor_from(issuer):
            _fail(report, "issuer", "issuer_not_allowed",
                  f"application {client.name or client.client_id} does not accept actor tokens of {issuer.name}")
    elif client is not None and not issuer.exchangeable_by(client):
        _fail(report, "issuer", "issuer_not_allowed",
              f"trusted token issuer {issuer.name} and application {client.name or client.client_id} are not linked")
    report.passed("issuer", issuer.name)


#: Claims only an OpenID Connect ID token carries (OIDC Core §2, §3.1.3.6, §3.3.2.11); never in an
#: RFC 9068 access token. ``auth_time``, ``acr`` and ``amr`` are not among them: RFC 9068 §2.2.1 puts
#: them in access tokens too.
ID_TOKEN_CLAIMS = ("nonce", "at_hash", "c_hash", "s_hash")


def says_id_token(header, claims):
    """Whether a JWT says it is an OpenID Connect ID token (and not an RFC 9068 access token).

    It does when its ``typ`` is not ``at+jwt`` and it carries a claim only ID tokens carry, or an
    ``azp`` that its ``aud`` contains (an ID token's audience is the client it was issued to, OIDC
    Core §2; an access token names the resource servers). Tokens that say neither are taken as
    what the client declares.
    """
    typ = header.get("typ")
    if isinstance(typ, str) and normalize_token_type(typ) == "at+jwt":
        return False
    if any(name in claims for name in ID_TOKEN_CLAIMS):
        return True
    azp, aud = claims.get("azp"), claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
    return isinstance(azp, str) and azp in audiences


@_step("type")
def _check_type(v):
    """Never another kind of JWT; the issuer's required type; the token's own kind against the declared one.

    ``token_type`` is the request's ``subject_token_type`` (RFC 8693 §3), None when none is declared
    (the console's and the API's token tests). An access token says so with ``typ`` ``at+jwt``
    (RFC 9068 §2.1); an ID token by ``says_id_token``. Declared ``access_token``, an ID token is
    refused; declared ``id_token``, an ``at+jwt`` access token is; ``jwt`` takes either kind.
    """
    report, issuer = v.report, v.issuer
    typ = v.header.get("typ")
    if typ is not None and not isinstance(typ, str):
        _fail(report, "type", "malformed", "typ is not a string")
    typ_value = normalize_token_type(typ) if typ else ""
    if typ_value in FOREIGN_TYPES:
        _fail(report, "type", "wrong_type", f"typ {typ!r} names another kind of JWT")
    if "events" in v.claims:  # RFC 8417 SETs and back-channel logout tokens, typed or not
        _fail(report, "type", "wrong_type", "an events claim makes it a security event or logout token")
    if issuer.required_type and typ_value != normalize_token_type(issuer.required_type):
        _fail(report, "type", "wrong_type", f"this issuer's tokens must have typ {issuer.required_type!r}")
    if v.token_type == ACCESS_TOKEN_TYPE and says_id_token(v.header, v.claims):
        _fail(report, "type", "id_token_as_access_token",
              "it is an ID token (an ID-token claim, or azp within aud) sent as an access token")
    if v.token_type == ID_TOKEN_TYPE and typ_value == "at+jwt":
        _fail(report, "type", "type_mismatch", "typ at+jwt makes it an access token, sent as an ID token")
    detail = f"typ {typ}" if typ else "typ absent (not required)"
    report.passed("type", detail + (f"; sent as {TOKEN_TYPE_NAMES[v.token_type]}" if v.token_type else ""))


@_step("algorithm")
def _check_algorithm(v):
    """The algorithm, from the issuer's allow-list only."""
    alg = v.alg
    if alg not in _ALGORITHMS or alg not in v.issuer.allowed_algorithms:
        _fail(v.report, "algorithm", "algorithm_not_allowed", "this algorithm is not in the issuer's allowed list")
    v.report.passed("algorithm", alg)


def _issuer_keys(issuer, kid, report):
    """Every key from this issuer's own source (its JWKS, by ``kid``, or its certificates)."""
    try:
        if issuer.jwks_uri:
            return key_sources.jwks_keys(issuer, kid)
        return key_sources.pem_keys(issuer)
    except key_sources.KeySourceError as exc:
        _fail(report, "key", "key_source_unavailable", exc.detail)
    except Exception as exc:  # e.g. the shared cache is down: fail closed, never 500
        if outage.database_unavailable(exc):
            raise  # the database is down, not the issuer's keys: a 503 (exchange/ops/outage.py)
        log.exception("The keys of trusted issuer %s could not be loaded", issuer.pk)
        _fail(report, "key", "key_source_unavailable", "the issuer's keys could not be loaded (see the server log)")


@_step("key")
def _check_key(v):
    """The keys that may have signed it: the token's kid (JWKS), its algorithm, currently valid."""
    report, issuer, kid, alg, now = v.report, v.issuer, v.kid, v.alg, v.now
    keys = _issuer_keys(issuer, kid, report)
    if issuer.jwks_uri and kid is not None:
        keys = [k for k in keys if k.kid == kid]
        if not keys:
            _fail(report, "key", "unknown_key", "no key in the issuer's JWKS has this kid")
    keys = [k for k in keys if alg in k.algorithms]
    if not keys:
        _fail(report, "key", "unknown_key", f"no key of this issuer can verify {alg}")
    current = [k for k in keys if k.valid_at(now)]
    if not current:
        _fail(report, "key", "certificate_expired", "every matching certificate is outside its validity period")
    v.keys = keys = current[:_MAX_KEY_TRIES]
    report.passed("key", ", ".join(sorted({k.description for k in keys})) + f" from {keys[0].source}")


@_step("signature")
def _check_signature(v):
    """The signature, by one of the candidate keys."""
    segments = v.segments
    matched = verify_signature(f"{segments[0]}.{segments[1]}".encode("ascii"), v.signature, v.alg, v.keys)
    if matched is None:
        _fail(v.report, "signature", "bad_signature", "the signature does not verify with the issuer's key")
    v.report.key_description = matched.description
    v.report.passed("signature", "verified")


@_step("expiry")
def _check_expiry(v):
    """exp: required, not reached (with the issuer's clock skew)."""
    report, now, skew = v.report, v.now, v.issuer.clock_skew
    try:
        exp = _numeric_date(v.claims, "exp")
    except ValueError:
        _fail(report, "expiry", "invalid_claim", "exp is not a NumericDate")
    if exp is None:
        _fail(report, "expiry", "missing_claim", "exp is missing")
    if now >= exp + skew:
        _fail(report, "expiry", "expired", f"expired {int(now - exp)} s ago (clock skew {skew} s)")
    v.exp = exp
    report.passed("expiry", f"expires in {int(exp - now)} s")


@_step("not_before")
def _check_not_before(v):
    """nbf, when present: reached (with the issuer's clock skew)."""
    report, now, skew = v.report, v.now, v.issuer.clock_skew
    try:
        nbf = _numeric_date(v.claims, "nbf")
    except ValueError:
        _fail(report, "not_before", "invalid_claim", "nbf is not a NumericDate")
    if nbf is not None and nbf > now + skew:
        _fail(report, "not_before", "not_yet_valid", f"valid only in {int(nbf - now)} s (clock skew {skew} s)")
    report.passed("not_before", "absent" if nbf is None else "reached")


@_step("issued_at")
def _check_issued_at(v):
    """iat, when present: not in the future, within the issuer's maximum age; without it, the lifetime is."""
    report, now, issuer = v.report, v.now, v.issuer
    skew, max_age = issuer.clock_skew, issuer.max_token_age
    try:
        iat = _numeric_date(v.claims, "iat")
    except ValueError:
        _fail(report, "issued_at", "invalid_claim", "iat is not a NumericDate")
    if iat is not None:
        if iat > now + skew:
            _fail(report, "issued_at", "not_yet_valid", "iat is in the future")
        if now - iat > max_age + skew:
            _fail(report, "issued_at", "too_old", f"issued {int(now - iat)} s ago; the maximum age is {max_age} s")
        report.passed("issued_at", f"issued {max(0, int(now - iat))} s ago (maximum {max_age} s)")
    else:
        # Without iat the remaining lifetime bounds the age.
        if v.exp - now > max_age + skew:
            _fail(report, "issued_at", "too_old", f"no iat, and the token is valid for longer than the maximum age of {max_age} s")
        report.passed("issued_at", f"iat absent; remaining lifetime within {max_age} s")
    v.iat = iat


@_step("audience")
def _check_audience(v):
    """aud contains CONSOLE_ISSUER or the issuer's alias."""
    report, alias = v.report, v.issuer.alias
    aud = v.claims.get("aud")
    if aud is None:
        _fail(report, "audience", "missing_claim", "aud is missing")
    audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(audiences, list) or not audiences or not all(isinstance(a, str) for a in audiences):
        _fail(report, "audience", "invalid_claim", "aud is not a string or a list of strings")
    accepted = [project_settings.CONSOLE_ISSUER] + ([alias] if alias else [])
    if not any(a in accepted for a in audiences):
        _fail(report, "audience", "audience_mismatch",
              f"aud must contain {project_settings.CONSOLE_ISSUER!r}" + (f" or the alias {alias!r}" if alias else ""))
    report.passed("audience", "contains " + " / ".join(repr(a) for a in accepted if a in audiences))


@_step("subject")
def _check_subject(v):
    """sub: a non-empty, printable string of bounded length."""
    claims = v.claims
    if "sub" not in claims:
        _fail(v.report, "subject", "missing_claim", "sub is missing")
    problem = _subject_problem(claims["sub"])
    if problem:
        _fail(v.report, "subject", "invalid_claim", problem)
    v.report.passed("subject", claims["sub"])


def _party(value, default_iss, name):
    """One party of ``act``/``may_act``: {"sub", "iss"}, ``iss`` defaulting to the token's own issuer.

    RFC 8693 §4.1: the claims of ``act`` identify the actor; without ``iss`` its ``sub`` is one of
    the token's issuer, so the default keeps it in that namespace when the chain is carried into
    a token this server issues. Other members are not carried (§4.1: non-identity claims are not
    meaningful there). Raises ValueError with a detail.
    """
    if not isinstance(value, dict):
        raise ValueError(f"{name} is not a JSON object")
    problem = _subject_problem(value["sub"]) if "sub" in value else "sub is missing"
    if problem:
        raise ValueError(f"{name}: {problem}")
    iss = value.get("iss", default_iss)
    if not isinstance(iss, str) or not iss or len(iss) > MAX_ACT_ISSUER_LENGTH or not storable(iss):
        raise ValueError(f"{name}: iss is not a string of 1 to {MAX_ACT_ISSUER_LENGTH} characters")
    return {"sub": value["sub"], "iss": iss}


class ActChainTooDeep(ValueError):
    pass


def act_chain(value, default_iss):
    """The delegation chain of an ``act`` claim, outermost (most recent) actor first; [] when absent.

    Walked in a loop, never recursively, and at most MAX_ACT_DEPTH actors deep (ActChainTooDeep
    beyond); ValueError for a malformed actor.
    """
    chain = []
    while value is not None:
        if len(chain) >= MAX_ACT_DEPTH:
            raise ActChainTooDeep(f"act nests more than {MAX_ACT_DEPTH} actors")
        party = _party(value, default_iss, "act" + ".act" * len(chain))
        chain.append(party)
        value = value.get("act")
    return chain


def describe_chain(chain):
    """Text for an explanation: the actors of a chain, outermost first."""
    return " ← ".join(f"{party['sub']} ({party['iss']})" for party in chain)


@_step("delegation")
def _check_delegation(v):
    """act and may_act (RFC 8693 §4.1, §4.4), when present: well-formed and bounded; kept on the report."""
    report, claims = v.report, v.claims
    try:
        report.act_chain = act_chain(claims.get("act"), claims["iss"])
        if "may_act" in claims:
            report.may_act = _party(claims["may_act"], claims["iss"], "may_act")
    except ActChainTooDeep as exc:
        _fail(report, "delegation", "act_chain_too_deep", str(exc))
    except ValueError as exc:
        _fail(report, "delegation", "invalid_delegation_claim", str(exc))
    parts = []
    if report.act_chain:
        parts.append(f"act: {describe_chain(report.act_chain)}")
    if report.may_act is not None:
        parts.append(f"may_act: {describe_chain([report.may_act])}")
    report.passed("delegation", "; ".join(parts) or "no act or may_act")


@_step("condition")
def _check_condition(v):
    """The issuer's admission condition over the verified claims: it must yield true.

    Before the replay step, so a refused token's jti is not spent. Never echoes the expression
    or a claim value: the detail is one of conditions.evaluate's fixed phrases.
    """
    program = conditions.program_for(v.issuer)
    if program is None:
        # A shared issuer saved before conditions existed (or behind the models' back) is never open to all.
        if presets.shared_preset(v.issuer.preset, v.issuer.issuer) is not None:
            _fail(v.report, "condition", "condition_not_met",
                  "this issuer signs for every customer of its platform and has no condition")
        v.report.passed("condition", "none set for this issuer")
        return
    ok, why = conditions.evaluate(program, v.claims)
    if not ok:
        _fail(v.report, "condition", "condition_not_met", why)
    v.report.passed("condition", "true")


@_step("claims")
def _check_claims(v):
    """The issuer's claim mapping over the verified claims (claim_mapping.map_claims).

    Before the replay step, so a refused token's jti is not spent. The detail names the configured
    claim names only, never a value. An actor token's claims are never carried (only its ``sub`` and
    ``iss``, in ``act``), so its issuer's mapping does not apply to it.
    """
    if v.report.role == "actor":
        v.report.passed("claims", "not applied to an actor token: only its sub and iss are carried, in act")
        return
    mappings = v.issuer.claim_mappings
    if not mappings:
        v.report.passed("claims", "none mapped for this issuer: only sub")
        return
    try:
        mapped, notes = claim_mapping.map_claims(mappings, v.claims)
    except claim_mapping.MappingRefused as exc:
        _fail(v.report, "claims", exc.cause, exc.detail)
    v.report.mapped_claims = mapped
    v.report.passed("claims", "; ".join(notes))


@_step("replay")
def _check_replay(v):
    """jti: well-formed; required or checked for reuse when the issuer says so (see REPLAY_MODES)."""
    report, issuer = v.report, v.issuer
    jti = v.claims.get("jti")
    if jti is not None and (not isinstance(jti, str) or not jti or len(jti) > 255 or not storable(jti)):
        _fail(report, "replay", "invalid_claim", "jti is not a string of 1 to 255 characters (Unicode text, no NUL)")
    if jti is None and issuer.require_jti:
        _fail(report, "replay", "missing_claim", "this issuer requires jti")
    if jti is None or not issuer.reject_replayed_jti:
        report.passed("replay", "not checked for this issuer" if jti is not None else "no jti")
        return
    # Kept while the token could still be accepted: until exp, or until it becomes too old.
    exp, iat = v.exp, v.iat
    usable_until = min(exp, iat + issuer.max_token_age) if iat is not None else exp
    report.replay = ReplayEntry("jti:%s:%s" % (issuer.pk, hashlib.sha256(jti.encode()).hexdigest()),
                                max(1, math.ceil(usable_until + issuer.clock_skew - v.now)))
    if v.replay == "defer":
        report.passed("replay", "recorded with the issued token")
    elif v.replay == "consume":
        consume_replay(report)
    else:
        _replay_step(report, lambda entry: not replay_record.recorded(entry.key),
                     "first use of this jti (not recorded yet)")


#: The routine: each step's check, in the order of STEPS (a step without a check fails at import).
_CHECKS = tuple(_STEP_CHECKS[name] for name, _ in STEPS)


def validate_subject_token(token, *, client=None, now=None, replay="consume", token_type=None, role="subject"):
    """Verify ``token`` as a subject token; return the Report with verified claims.

    Raises SubjectTokenRejected (with ``cause`` and the report) on any failure.
    ``client`` is the application exchanging it (None: checked for no application,
    as the console's token tests do). ``replay`` says what the replay step does with the
    jti, when the issuer rejects reused ones: ``"consume"`` records it as used; ``"check"``
    only looks it up (explanations and dry runs); ``"defer"`` leaves the step to the caller,
    who must then call ``consume_replay(report)`` before issuing anything (the grant does,
    inside the transaction that writes the issued token). ``token_type`` is the declared
    ``subject_token_type`` (a URN of SUBJECT_TOKEN_TYPES), compared with what the token says
    it is in the type step; None declares nothing. ``role`` ``"actor"`` checks an actor token
    (RFC 8693 §2.1) with the same steps: its issuer must then be one ``client`` accepts actor
    tokens from (``Application.accepts_actor_from``) rather than one linked to it, and the
    report's sentences name the actor token.
    """
    if replay not in REPLAY_MODES:
        raise ValueError(f"replay must be one of {REPLAY_MODES}")
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    if token_type is not None and token_type not in SUBJECT_TOKEN_TYPES:
        raise ValueError(f"token_type must be one of {SUBJECT_TOKEN_TYPES}")
    validation = _Validation(token, client, time.time() if now is None else now, replay, token_type, role)
    for check in _CHECKS:
        check(validation)
    return validation.report


def _replay_step(report, first_use, detail):
    """The replay step: it passes with ``detail`` when the replay record says ``first_use(entry)``.

    It fails (``replayed``) when the record says no, and fails closed (``replay_check_unavailable``)
    when the store cannot be reached — unless the database holding the record is down: that is an
    outage, answered 503 (exchange/ops/outage.py). A deferred step already in the report is replaced.
    """
    try:
        ok = first_use(report.replay)
    except Exception as exc:  # fail closed, never 500
        if outage.database_unavailable(exc):
            raise  # the database holding the record is down: a 503, nothing issued (exchange/ops/outage.py)
        log.exception("The replay record could not be reached")
        ok = None
    report.steps = [step for step in report.steps if step.name != "replay"]
    if ok is None:
        _fail(report, "replay", "replay_check_unavailable", "the replay record (database) could not be reached")
    if not ok:
        _fail(report, "replay", "replayed", "this jti was already exchanged")
    report.passed("replay", detail)


def consume_replay(report):
    """Record the validated subject token's jti as used; SubjectTokenRejected (replayed) if it already was.

    ``validate_subject_token`` does this itself unless called with ``replay="check"`` or
    ``replay="defer"``; the token-exchange grant defers it, then calls this inside the
    transaction that writes the issued token (storage.py): the jti row then commits with the
    token, in one write, and a token is issued only if its jti was recorded. Atomic across
    processes and instances, with or without Redis (shared_cache.ReplayRecord).
    """
    if report.replay is not None:
        _replay_step(report, lambda entry: replay_record.consume(entry.key, entry.lifetime), "first use of this jti")


def explain_subject_token(token, *, client=None, now=None, token_type=None, role="subject"):
    """Like validate_subject_token, but returns the report instead of raising, and consumes nothing."""
    try:
        return validate_subject_token(token, client=client, now=now, replay="check", token_type=token_type,
                                      role=role)
    except SubjectTokenRejected as exc:
        return exc.report
