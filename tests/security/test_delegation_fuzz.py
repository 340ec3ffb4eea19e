"""Property-based fuzzing of delegation (issue 17): random act, may_act, scope and actor claims, validly signed.

No 5xx, always RFC 6749 JSON + no-store; an issued token's act chain is never deeper than MAX_ACT_DEPTH
and names the actor token's sub and iss first.
"""

import json
from http import HTTPStatus
from urllib.parse import urlencode

import jwt
import pytest
from django.test import Client
from hypothesis import given, strategies as st

from exchange.subject_token import MAX_ACT_DEPTH

from ..factories import claims_for, private_key, signed
from ..utils import TOKEN_EXCHANGE, basic_auth
from .test_fuzz import FUZZ, check, json_values

JWT_TYPE = "urn:ietf:params:oauth:token-type:jwt"
ACTOR_ISS = "https://actor.issuer.test"  # conftest's actor_issuer

parties = st.recursive(
    json_values | st.fixed_dictionaries({"sub": st.sampled_from(["svc", "gw", ""]) | json_values}),
    lambda children: st.fixed_dictionaries(
        {"sub": st.sampled_from(["svc", "gw", "edge"])},
        optional={"iss": st.sampled_from([ACTOR_ISS, "https://pem.issuer.test", ""]) | json_values, "act": children},
    ),
    max_leaves=12,
)


@pytest.fixture
def fuzz_delegate(make_application, actor_issuer, pem_issuer, settings):
    settings.TOKEN_EXCHANGE = {"CLIENT_AUTH_MAX_FAILURES_PER_ADDRESS": 10**6, "CLIENT_AUTH_MAX_FAILURES_PER_CLIENT": 10**6}
    app = make_application(name="Agent", scopes="openid profile", allow_delegation=True, actor_issuers=[actor_issuer])
    client = Client(HTTP_HOST="localhost")

    def do(subject_claims, actor_claims, scope):
        body = {"grant_type": TOKEN_EXCHANGE, "subject_token_type": JWT_TYPE, "actor_token_type": JWT_TYPE,
                "subject_token": signed(private_key("rsa", "issuer-a"), {"alg": "RS256"}, subject_claims),
                "actor_token": signed(private_key("rsa", "actor-issuer"), {"alg": "RS256"}, actor_claims),
                **({"scope": scope} if scope else {})}
        return client.post("/oauth2/token", urlencode(body), content_type="application/x-www-form-urlencoded",
                           HTTP_AUTHORIZATION=basic_auth(app.client_id, app.raw_secret))

    return do


@FUZZ
@given(subject=st.fixed_dictionaries({}, optional={"act": parties, "may_act": parties,
                                                   "scope": st.sampled_from(["openid", "openid profile"]) | json_values,
                                                   "scp": json_values}),
       actor=st.fixed_dictionaries({"sub": st.sampled_from(["svc", "gw"]) | json_values},
                                   optional={"act": parties, "may_act": parties}),
       scope=st.sampled_from(["", "openid", "openid profile", "profile"]))
def test_random_delegation_claims(fuzz_delegate, subject, actor, scope):
    response = fuzz_delegate({**claims_for("https://pem.issuer.test"), **subject}, {**claims_for(ACTOR_ISS), **actor},
                        scope)
    check(response)
    if response.status_code == HTTPStatus.OK:
        act = jwt.decode(json.loads(response.content)["access_token"], options={"verify_signature": False})["act"]
        assert (act["sub"], act["iss"]) == (actor["sub"], ACTOR_ISS)
        depth = 0
        while act:
            depth, act = depth + 1, act.get("act")
        assert depth <= MAX_ACT_DEPTH
