"""What an administrator and a client read about a subject token: each step's exact sentence, each boundary.

The console's "Test a token" page, the token-validations API and ``explain_token`` show the report of
``validate_subject_token`` step by step; a client reads the cause's fixed sentence. These tests pin
both, and each numeric boundary of the checks, at a fixed ``now`` (mutation testing found them unpinned:
docs/testing.md).
"""

import time

import pytest
from django.conf import settings

from exchange import flows, key_sources
from exchange.conf import exchange_settings
from exchange.subject_token import (
    CAUSES, FOREIGN_TYPES, STEPS, SubjectTokenRejected, consume_replay, explain_subject_token, validate_subject_token,
)

from ..factories import DROP, certificate_pem, mint, private_key, public_jwk, raw_token

NOW = int(time.time())
SKEW = 60  # DEFAULT_CLOCK_SKEW_SECONDS
MAX_AGE = 3600  # DEFAULT_MAX_TOKEN_AGE_SECONDS
ISS = "https://pem.issuer.test"  # conftest's pem_issuer
HEADER = {"alg": "RS256", "typ": "JWT"}

#: The sentence a client reads for each cause (error_description): a contract, so written out here.
CLIENT_SENTENCES = {
    "malformed": "The subject token is not a well-formed signed JWT.",
    "unsupported_header": "The subject token uses a header parameter this server does not accept.",
    "unknown_issuer": "The subject token's issuer is not a trusted token issuer.",
    "issuer_disabled": "The subject token's issuer is disabled.",
    "issuer_not_allowed": "The subject token's issuer is not trusted for this client.",
    "wrong_type": "The subject token's type (typ) is not accepted.",
    "id_token_as_access_token": "The subject token is an ID token; send it with subject_token_type "
                                "urn:ietf:params:oauth:token-type:id_token.",
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

LABELS = [
    ("format", "Token format"), ("header", "Header"), ("issuer", "Trusted issuer"), ("type", "Token type (typ)"),
    ("algorithm", "Signing algorithm"), ("key", "Signing key"), ("signature", "Signature"),
    ("expiry", "Expiry (exp)"), ("not_before", "Not before (nbf)"), ("issued_at", "Issued at (iat) and age"),
    ("audience", "Audience (aud)"), ("subject", "Subject (sub)"), ("delegation", "Delegation (act, may_act)"),
    ("condition", "Admission condition"), ("claims", "Mapped claims"), ("replay", "Replay (jti)"),
]


def test_client_sentences_and_step_labels_are_the_published_ones():
    assert CAUSES == CLIENT_SENTENCES
    assert list(STEPS) == LABELS


def _claims(**overrides):
    claims = {"iss": ISS, "sub": "alice", "aud": settings.CONSOLE_ISSUER, "iat": NOW - 10, "exp": NOW + 290,
              "jti": "jti-1"}
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not DROP}


def _signed(**overrides):
    return mint(private_key("rsa", "issuer-a"), ISS, **{"iat": NOW - 10, "exp": NOW + 290, "jti": "jti-1", **overrides})


def _failure(report):
    (failed,) = [s for s in report.steps if s.ok is False]
    return failed.name, report.cause, failed.detail


MAX_BYTES = 16384  # SUBJECT_TOKEN_MAX_BYTES

REFUSALS = {
    # name: (token, (step, cause, detail))
    "empty": ("", ("format", "malformed", "the token is empty")),
    "not a string": (None, ("format", "malformed", "the token is empty")),
    "one byte too long": ("a" * (MAX_BYTES + 1), ("format", "malformed", f"the token is longer than {MAX_BYTES} characters")),
    "exactly the maximum length, two parts": ("a." + "a" * (MAX_BYTES - 2),
                                              ("format", "malformed", "a signed JWT has exactly three dot-separated parts")),
    "two parts": ("a.b", ("format", "malformed", "a signed JWT has exactly three dot-separated parts")),
    "not base64": ("!.!.!", ("format", "malformed", "a part is not canonical base64url of a UTF-8 JSON object")),
    "no alg": (raw_token({"typ": "JWT"}, _claims()), ("header", "malformed", "alg is missing or not a string")),
    "empty alg": (raw_token({"alg": ""}, _claims()), ("header", "malformed", "alg is missing or not a string")),
    "crit": (raw_token({**HEADER, "crit": ["exp"]}, _claims()),
             ("header", "unsupported_header", "the crit header parameter is not accepted")),
    "b64": (raw_token({**HEADER, "b64": False}, _claims()),
            ("header", "unsupported_header", "the b64 header parameter is not accepted")),
    "zip": (raw_token({**HEADER, "zip": "DEF"}, _claims()),
            ("header", "unsupported_header", "the zip header parameter is not accepted")),
    "enc": (raw_token({**HEADER, "enc": "A128GCM"}, _claims()),
            ("header", "unsupported_header", "the enc header parameter is not accepted")),
    "nested cty": (raw_token({**HEADER, "cty": "JWT"}, _claims()),
                   ("header", "unsupported_header", "nested JWTs are not accepted")),
    "nested cty, media type": (raw_token({**HEADER, "cty": "application/jwt"}, _claims()),
                               ("header", "unsupported_header", "nested JWTs are not accepted")),
    "kid not a string": (raw_token({**HEADER, "kid": 5}, _claims()), ("header", "malformed", "kid is not a string")),
    # A lone surrogate anywhere is not Unicode text: the part is refused at the format step (issue 13).
    "lone surrogate": (raw_token({**HEADER, "x": "\ud800"}, _claims()),
                       ("format", "malformed", "a part is not canonical base64url of a UTF-8 JSON object")),
    "lone surrogate in a list": (_signed(aud=[settings.CONSOLE_ISSUER, "\ud800"]),
                                 ("format", "malformed", "a part is not canonical base64url of a UTF-8 JSON object")),
    "lone surrogate in a member name in a list": (
        _signed(groups=[{"ok": 1}, {"\udfff": 1}]),
        ("format", "malformed", "a part is not canonical base64url of a UTF-8 JSON object")),
    "no iss": (raw_token(HEADER, _claims(iss=DROP)), ("issuer", "missing_claim", "iss is missing")),
    "iss not a string": (raw_token(HEADER, _claims(iss=5)),
                         ("issuer", "invalid_claim", "iss is not a non-empty string of Unicode text without NUL")),
    "iss empty": (raw_token(HEADER, _claims(iss="")),
                  ("issuer", "invalid_claim", "iss is not a non-empty string of Unicode text without NUL")),
    "iss with NUL": (raw_token(HEADER, _claims(iss=ISS + "\x00")),
                     ("issuer", "invalid_claim", "iss is not a non-empty string of Unicode text without NUL")),
    "unknown iss": (raw_token(HEADER, _claims(iss="https://other.test")),
                    ("issuer", "unknown_issuer", "no trusted token issuer has this issuer value")),
    "typ not a string": (raw_token({**HEADER, "typ": 5}, _claims()), ("type", "malformed", "typ is not a string")),
    "events": (raw_token(HEADER, _claims(events={})),
               ("type", "wrong_type", "an events claim makes it a security event or logout token")),
    "HS256": (raw_token({"alg": "HS256"}, _claims()),
              ("algorithm", "algorithm_not_allowed", "this algorithm is not in the issuer's allowed list")),
    "none": (raw_token({"alg": "none"}, _claims()),
             ("algorithm", "algorithm_not_allowed", "this algorithm is not in the issuer's allowed list")),
    "no key for ES256": (raw_token({"alg": "ES256"}, _claims()), ("key", "unknown_key", "no key of this issuer can verify ES256")),
    "bad signature": (raw_token(HEADER, _claims()),
                      ("signature", "bad_signature", "the signature does not verify with the issuer's key")),
    "exp not a number": (_signed(exp="soon"), ("expiry", "invalid_claim", "exp is not a NumericDate")),
    "exp a boolean": (_signed(exp=True), ("expiry", "invalid_claim", "exp is not a NumericDate")),
    "exp negative": (_signed(exp=-1), ("expiry", "invalid_claim", "exp is not a NumericDate")),
    "exp after 9999": (_signed(exp=253402300800), ("expiry", "invalid_claim", "exp is not a NumericDate")),
    "no exp": (_signed(exp=DROP), ("expiry", "missing_claim", "exp is missing")),
    "expired at the skew's edge": (_signed(exp=NOW - SKEW), ("expiry", "expired", f"expired {SKEW} s ago (clock skew {SKEW} s)")),
    "nbf not a number": (_signed(nbf="later"), ("not_before", "invalid_claim", "nbf is not a NumericDate")),
    "nbf past the skew": (_signed(nbf=NOW + SKEW + 1),
                          ("not_before", "not_yet_valid", f"valid only in {SKEW + 1} s (clock skew {SKEW} s)")),
    "iat not a number": (_signed(iat="then"), ("issued_at", "invalid_claim", "iat is not a NumericDate")),
    "iat past the skew": (_signed(iat=NOW + SKEW + 1), ("issued_at", "not_yet_valid", "iat is in the future")),
    "iat too old by one second": (_signed(iat=NOW - MAX_AGE - SKEW - 1),
                                  ("issued_at", "too_old", f"issued {MAX_AGE + SKEW + 1} s ago; the maximum age is {MAX_AGE} s")),
    "no iat, lifetime too long": (_signed(iat=DROP, exp=NOW + MAX_AGE + SKEW + 1),
                                  ("issued_at", "too_old",
                                   f"no iat, and the token is valid for longer than the maximum age of {MAX_AGE} s")),
    "no aud": (_signed(aud=DROP), ("audience", "missing_claim", "aud is missing")),
    "aud a number": (_signed(aud=5), ("audience", "invalid_claim", "aud is not a string or a list of strings")),
    "aud empty list": (_signed(aud=[]), ("audience", "invalid_claim", "aud is not a string or a list of strings")),
    "aud list with a number": (_signed(aud=[5]), ("audience", "invalid_claim", "aud is not a string or a list of strings")),
    "aud elsewhere": (_signed(aud="https://elsewhere.test"),
                      ("audience", "audience_mismatch",
                       f"aud must contain {settings.CONSOLE_ISSUER!r} or the alias 'console-at-pem'")),
    "no sub": (_signed(sub=DROP), ("subject", "missing_claim", "sub is missing")),
    "sub empty": (_signed(sub=""), ("subject", "invalid_claim", "sub must be a non-empty string")),
    "sub a number": (_signed(sub=5), ("subject", "invalid_claim", "sub must be a non-empty string")),
    "sub one character too long": (_signed(sub="s" * 256), ("subject", "invalid_claim", "sub is longer than 255 characters")),
    "sub padded": (_signed(sub=" alice"), ("subject", "invalid_claim", "sub has leading or trailing whitespace")),
    "sub with a control character": (_signed(sub="al\x07ice"),
                                     ("subject", "invalid_claim", "sub contains control or formatting characters")),
    "sub with a format character": (_signed(sub="al\u200bice"),
                                    ("subject", "invalid_claim", "sub contains control or formatting characters")),
    "sub with a lone surrogate": (_signed(sub="al\ud800ice"),
                                  ("format", "malformed", "a part is not canonical base64url of a UTF-8 JSON object")),
    "jti a number": (_signed(jti=5),
                     ("replay", "invalid_claim", "jti is not a string of 1 to 255 characters (Unicode text, no NUL)")),
    "jti empty": (_signed(jti=""),
                  ("replay", "invalid_claim", "jti is not a string of 1 to 255 characters (Unicode text, no NUL)")),
    "jti too long": (_signed(jti="j" * 256),
                     ("replay", "invalid_claim", "jti is not a string of 1 to 255 characters (Unicode text, no NUL)")),
    "jti with NUL": (_signed(jti="j\x00"),
                     ("replay", "invalid_claim", "jti is not a string of 1 to 255 characters (Unicode text, no NUL)")),
}


@pytest.mark.parametrize("name", list(REFUSALS))
def test_each_refusal_is_explained_at_its_step(pem_issuer, name):
    token, expected = REFUSALS[name]
    report = explain_subject_token(token, now=NOW)
    assert _failure(report) == expected
    step = expected[0]
    names = [s.name for s in report.steps]
    assert names == [n for n, _ in LABELS]  # every step once, in order
    after = names[names.index(step) + 1:]
    assert all(s.ok is None and s.detail == "" for s in report.steps if s.name in after)
    assert all(s.ok is True for s in report.steps[:names.index(step)])
    assert [s.label for s in report.steps] == [label for _, label in LABELS]
    assert report.as_dict()["description"] == CLIENT_SENTENCES[expected[1]]
    assert report.key_description == ("" if step in names[:names.index("signature") + 1] else "RSA 2048")


@pytest.mark.parametrize("typ", sorted(FOREIGN_TYPES) + ["application/DPoP+JWT"])
def test_every_foreign_jwt_type_is_refused_by_name(pem_issuer, typ):
    report = explain_subject_token(raw_token({**HEADER, "typ": typ}, _claims()), now=NOW)
    assert _failure(report) == ("type", "wrong_type", f"typ {typ!r} names another kind of JWT")


def test_foreign_types_are_exactly_these():
    assert FOREIGN_TYPES == {
        "dpop+jwt", "secevent+jwt", "logout+jwt", "jwk-set+jwt", "token-introspection+jwt",
        "oauth-authz-req+jwt", "client-authentication+jwt", "entity-statement+jwt", "trust-chain+json",
        "jwt-vc", "vc+sd-jwt", "kb+jwt",
    }


def test_a_valid_token_is_explained_step_by_step(pem_issuer):
    report = explain_subject_token(_signed(kid="k-1"), now=NOW)
    assert report.ok
    assert [(s.name, s.label, s.ok, s.detail) for s in report.steps] == [
        ("format", "Token format", True, "compact JWS with three parts"),
        ("header", "Header", True, "alg RS256, kid k-1"),
        ("issuer", "Trusted issuer", True, "PEM issuer"),
        ("type", "Token type (typ)", True, "typ JWT"),
        ("algorithm", "Signing algorithm", True, "RS256"),
        ("key", "Signing key", True, "RSA 2048 from pem"),
        ("signature", "Signature", True, "verified"),
        ("expiry", "Expiry (exp)", True, "expires in 290 s"),
        ("not_before", "Not before (nbf)", True, "absent"),
        ("issued_at", "Issued at (iat) and age", True, f"issued 10 s ago (maximum {MAX_AGE} s)"),
        ("audience", "Audience (aud)", True, f"contains {settings.CONSOLE_ISSUER!r}"),
        ("subject", "Subject (sub)", True, "alice"),
        ("delegation", "Delegation (act, may_act)", True, "no act or may_act"),
        ("condition", "Admission condition", True, "none set for this issuer"),
        ("claims", "Mapped claims", True, "none mapped for this issuer: only sub"),
        ("replay", "Replay (jti)", True, "first use of this jti (not recorded yet)"),
    ]
    assert report.as_dict() == {
        "valid": True, "cause": None, "description": None, "issuer": "PEM issuer", "mapped_claims": {},
        "steps": [{"name": s.name, "label": s.label, "ok": True, "detail": s.detail} for s in report.steps],
    }


def test_the_other_pass_details(pem_issuer):
    pem_issuer.reject_replayed_jti = False
    pem_issuer.save()
    report = explain_subject_token(
        mint(private_key("rsa", "issuer-a"), ISS, headers={"typ": None}, iat=DROP, nbf=NOW, exp=NOW + 100,
             aud=["https://elsewhere.test", "console-at-pem"]),
        now=NOW,
    )
    details = {s.name: s.detail for s in report.steps}
    assert report.ok, report.as_dict()
    assert details["header"] == "alg RS256"
    assert details["type"] == "typ absent (not required)"
    assert details["not_before"] == "reached"
    assert details["issued_at"] == f"iat absent; remaining lifetime within {MAX_AGE} s"
    assert details["audience"] == "contains 'console-at-pem'"
    assert details["replay"] == "not checked for this issuer"
    no_jti = explain_subject_token(_signed(jti=DROP), now=NOW)
    assert {s.name: s.detail for s in no_jti.steps}["replay"] == "no jti"


def test_no_jti_is_said_so_when_the_issuer_checks_replays(pem_issuer):
    report = explain_subject_token(_signed(jti=DROP), now=NOW)
    assert {s.name: s.detail for s in report.steps}["replay"] == "no jti"


@pytest.mark.parametrize("overrides", [
    {"exp": NOW - SKEW + 1},  # one second before the skew runs out
    {"nbf": NOW + SKEW},
    {"iat": NOW + SKEW},
    {"iat": NOW - MAX_AGE - SKEW},
    {"iat": DROP, "exp": NOW + MAX_AGE + SKEW},
    {"exp": 253402300799, "iat": NOW},  # the last NumericDate accepted
    {"sub": "s" * 255},
    {"sub": "élise"},  # not ASCII, printable
    {"jti": "j" * 255},
    {"aud": ["https://elsewhere.test", settings.CONSOLE_ISSUER]},
])
def test_boundaries_that_are_accepted(pem_issuer, overrides):
    report = explain_subject_token(_signed(**overrides), now=NOW)
    assert report.ok, report.as_dict()


def test_disabled_and_unlinked_issuers_are_named(pem_issuer, make_application):
    linked, other = make_application(name="Linked"), make_application(name="Other")
    pem_issuer.applications.set([linked])
    report = explain_subject_token(_signed(), client=other, now=NOW)
    assert _failure(report) == ("issuer", "issuer_not_allowed",
                                "trusted token issuer PEM issuer and application Other are not linked")
    assert explain_subject_token(_signed(), client=linked, now=NOW).ok
    pem_issuer.enabled = False
    pem_issuer.save()
    report = explain_subject_token(_signed(), now=NOW)
    assert _failure(report) == ("issuer", "issuer_disabled", "trusted token issuer PEM issuer is disabled")


def test_a_required_type_is_named(pem_issuer):
    pem_issuer.required_type = "at+jwt"
    pem_issuer.save()
    report = explain_subject_token(_signed(), now=NOW)
    assert _failure(report) == ("type", "wrong_type", "this issuer's tokens must have typ 'at+jwt'")
    assert explain_subject_token(_signed(headers={"typ": "application/AT+JWT"}), now=NOW).ok


def test_a_certificate_outside_its_validity_is_named(pem_issuer):
    later = NOW + 400 * 86400  # the test certificate is valid for 365 days
    report = explain_subject_token(_signed(iat=later - 10, exp=later + 290), now=later)
    assert _failure(report) == ("key", "certificate_expired", "every matching certificate is outside its validity period")


def test_a_replayed_jti_is_named(pem_issuer):
    token = _signed()
    first = validate_subject_token(token, now=NOW)
    assert [s.detail for s in first.steps if s.name == "replay"] == ["first use of this jti"]
    assert first.key_description == "RSA 2048"
    report = explain_subject_token(token, now=NOW)
    assert _failure(report) == ("replay", "replayed", "this jti was already exchanged")
    with pytest.raises(SubjectTokenRejected) as caught:
        validate_subject_token(token, now=NOW)
    assert caught.value.description == CLIENT_SENTENCES["replayed"]


def test_the_replay_entry_lasts_while_the_token_could_be_accepted(pem_issuer):
    """Until exp, or until iat + max age when that comes first, plus the skew; at least a second."""
    report = validate_subject_token(_signed(), now=NOW, replay="defer")
    assert report.replay.lifetime == 290 + SKEW
    assert report.replay.key.startswith(f"jti:{pem_issuer.pk}:") and len(report.replay.key.split(":")[2]) == 64
    old = validate_subject_token(_signed(iat=NOW - MAX_AGE + 5, exp=NOW + 1000, jti="jti-2"), now=NOW, replay="defer")
    assert old.replay.lifetime == 5 + SKEW
    no_iat = validate_subject_token(_signed(iat=DROP, exp=NOW + 100, jti="jti-3"), now=NOW, replay="defer")
    assert no_iat.replay.lifetime == 100 + SKEW
    assert [s.detail for s in report.steps if s.name == "replay"] == ["recorded with the issued token"]


def test_replay_modes_are_checked():
    with pytest.raises(ValueError, match="replay must be one of"):
        validate_subject_token("x", replay="skip")


def test_the_issuer_is_named_on_refusals_after_the_issuer_step(pem_issuer):
    report = explain_subject_token(_signed(exp=DROP), now=NOW)
    assert report.as_dict()["issuer"] == "PEM issuer"
    assert explain_subject_token("", now=NOW).as_dict()["issuer"] is None


def test_a_kid_is_required_to_match_only_for_jwks_issuers(db):
    """A PEM issuer has no kids: a token's kid does not narrow its certificates."""
    key = private_key("rsa", "issuer-a")
    flows.create_trusted_token_issuer(name="Kidless", issuer="https://kidless.test", certificates=[certificate_pem(key)])
    report = explain_subject_token(mint(key, "https://kidless.test", kid="whatever"), now=time.time())
    assert report.ok, report.as_dict()


def test_settings_defaults_used_here():
    assert (exchange_settings.SUBJECT_TOKEN_MAX_BYTES, exchange_settings.MAX_SUBJECT_LENGTH) == (MAX_BYTES, 255)
    assert (exchange_settings.DEFAULT_CLOCK_SKEW_SECONDS, exchange_settings.DEFAULT_MAX_TOKEN_AGE_SECONDS) == (SKEW, MAX_AGE)


def test_at_most_ten_keys_are_tried(db, jwks_server):
    """A token without kid is tried against at most ten candidate keys: the eleventh never verifies."""
    keys = [private_key("ec", f"many-{i}") for i in range(11)]
    jwks_server.document = {"keys": [public_jwk(key, None) for key in keys]}
    for member in jwks_server.document["keys"]:
        del member["kid"]
    flows.create_trusted_token_issuer(name="Many", issuer="https://many.test", jwks_uri=jwks_server.url)
    assert explain_subject_token(mint(keys[9], "https://many.test"), now=time.time()).ok
    report = explain_subject_token(mint(keys[10], "https://many.test"), now=time.time())
    assert report.cause == "bad_signature"


def test_the_earliest_numeric_date_is_accepted(pem_issuer):
    assert explain_subject_token(_signed(nbf=0), now=NOW).ok


def test_a_replay_entry_lasts_at_least_a_second(pem_issuer):
    report = validate_subject_token(_signed(exp=NOW - SKEW + 1), now=NOW, replay="defer")
    assert report.replay.lifetime == 1


def test_a_deferred_replay_step_is_replaced_when_consumed(pem_issuer):
    report = validate_subject_token(_signed(), now=NOW, replay="defer")
    consume_replay(report)
    assert [(s.name, s.ok, s.detail) for s in report.steps if s.name == "replay"] == [
        ("replay", True, "first use of this jti")]
    assert [s.name for s in report.steps] == [n for n, _ in LABELS]


JWT, ACCESS, ID = (f"urn:ietf:params:oauth:token-type:{name}" for name in ("jwt", "access_token", "id_token"))


@pytest.mark.parametrize("claims", [
    {"nonce": "n"}, {"at_hash": "h"}, {"c_hash": "h"}, {"s_hash": "h"},
    {"azp": "client-1", "aud": "client-1"}, {"azp": "client-1", "aud": ["api", "client-1"]},
])
def test_an_id_token_sent_as_an_access_token_is_named(pem_issuer, claims):
    report = explain_subject_token(raw_token(HEADER, _claims(**claims)), now=NOW, token_type=ACCESS)
    assert _failure(report) == ("type", "id_token_as_access_token",
                                "it is an ID token (an ID-token claim, or azp within aud) sent as an access token")


@pytest.mark.parametrize("header, claims", [
    ({**HEADER, "typ": "at+jwt"}, {"nonce": "n"}),  # typ at+jwt says access token, whatever the claims
    (HEADER, {"azp": "client-1"}),  # azp not within aud
    (HEADER, {"azp": 5, "aud": [5]}),
    (HEADER, {"auth_time": 1, "acr": "1", "amr": ["pwd"]}),  # RFC 9068 access tokens carry these too
])
def test_tokens_that_do_not_say_id_token_pass_the_type_step_as_access_tokens(pem_issuer, header, claims):
    report = explain_subject_token(raw_token(header, _claims(**claims)), now=NOW, token_type=ACCESS)
    assert [s.ok for s in report.steps if s.name == "type"] == [True]


def test_an_access_token_sent_as_an_id_token_is_named(pem_issuer):
    report = explain_subject_token(raw_token({**HEADER, "typ": "application/AT+JWT"}, _claims()), now=NOW, token_type=ID)
    assert _failure(report) == ("type", "type_mismatch", "typ at+jwt makes it an access token, sent as an ID token")


@pytest.mark.parametrize("token_type, said", [(JWT, "a JWT"), (ACCESS, "an access token"), (ID, "an ID token"),
                                              (None, None)])
def test_the_type_step_says_what_the_token_was_sent_as(pem_issuer, token_type, said):
    report = explain_subject_token(_signed(), now=NOW, token_type=token_type)
    assert report.ok
    assert {s.name: s.detail for s in report.steps}["type"] == "typ JWT" + (f"; sent as {said}" if said else "")


def test_an_id_token_passes_as_a_jwt(pem_issuer):
    assert explain_subject_token(_signed(nonce="n"), now=NOW, token_type=JWT).ok
    assert explain_subject_token(_signed(nonce="n"), now=NOW, token_type=ID).ok


def test_token_types_are_checked():
    with pytest.raises(ValueError, match="token_type must be one of"):
        validate_subject_token("x", token_type="urn:ietf:params:oauth:token-type:saml2")


def test_keys_that_cannot_be_loaded_fail_closed_by_name(pem_issuer, monkeypatch):
    def broken(issuer):
        raise RuntimeError("the shared cache is down")

    monkeypatch.setattr(key_sources, "pem_keys", broken)
    report = explain_subject_token(_signed(), now=NOW)
    assert _failure(report) == ("key", "key_source_unavailable",
                                "the issuer's keys could not be loaded (see the server log)")


def test_an_audience_mismatch_names_no_alias_when_the_issuer_has_none(db):
    key = private_key("rsa", "issuer-a")
    flows.create_trusted_token_issuer(name="Plain", issuer="https://plain.test", certificates=[certificate_pem(key)])
    report = explain_subject_token(mint(key, "https://plain.test", aud="https://elsewhere.test"), now=time.time())
    assert _failure(report) == ("audience", "audience_mismatch", f"aud must contain {settings.CONSOLE_ISSUER!r}")


def test_the_claim_mapping_step_is_explained(pem_issuer):
    flows.update_trusted_token_issuer(pem_issuer, claim_mappings=[
        {"source": "email", "target": "mail", "type": "string", "required": True},
        {"source": "groups", "target": "groups", "type": "string_list"},
        {"source": "level", "target": "level", "type": "number"}])
    report = explain_subject_token(_signed(email="a@example.com", groups=5), now=NOW)
    assert report.ok and report.mapped_claims == {"mail": "a@example.com"}
    assert {s.name: s.detail for s in report.steps}["claims"] == (
        "email → mail; groups: not a list of strings within the size limits, dropped; level: absent, not carried")
    assert report.as_dict()["mapped_claims"] == {"mail": "a@example.com"}
    refused = explain_subject_token(_signed(groups=["g"]), now=NOW)
    assert _failure(refused) == ("claims", "mapped_claim_missing", "email is missing (required)")
    assert refused.mapped_claims == {}
    refused = explain_subject_token(_signed(email=["a@example.com"]), now=NOW)
    assert _failure(refused) == ("claims", "mapped_claim_invalid",
                                 "email is not a string within the size limits (required)")
    assert [s.ok for s in refused.steps if s.name == "replay"] == [None]  # the jti is not looked at, nor spent


def test_a_key_source_failure_is_named_with_its_detail(pem_issuer, monkeypatch):
    """What the key source said (a JWKS endpoint's answer, say) is what the administrator reads at the key step."""
    def unavailable(issuer):
        raise key_sources.KeySourceError("The JWKS endpoint answered HTTP 503.")

    monkeypatch.setattr(key_sources, "pem_keys", unavailable)
    report = explain_subject_token(_signed(), now=NOW)
    assert _failure(report) == ("key", "key_source_unavailable", "The JWKS endpoint answered HTTP 503.")
    assert report.as_dict()["description"] == CLIENT_SENTENCES["key_source_unavailable"]


def test_a_condition_that_holds_is_said_so(pem_issuer):
    pem_issuer.condition = 'claims.sub == "alice"'
    pem_issuer.save()
    report = explain_subject_token(_signed(), now=NOW)
    assert report.ok, report.as_dict()
    assert {s.name: s.detail for s in report.steps}["condition"] == "true"
    refused = explain_subject_token(_signed(sub="bob"), now=NOW)
    assert _failure(refused)[:2] == ("condition", "condition_not_met")


def test_a_missing_jti_is_named_when_the_issuer_requires_one(pem_issuer):
    pem_issuer.require_jti = True
    pem_issuer.save()
    report = explain_subject_token(_signed(jti=DROP), now=NOW)
    assert _failure(report) == ("replay", "missing_claim", "this issuer requires jti")
    assert report.as_dict()["description"] == CLIENT_SENTENCES["missing_claim"]
