"""Sign-in for the registered applications (exchange/signin.py): applications allowed the Code grant,
a local user, PKCE pairs and the steps of the authorization code flow through Django's test client."""

import base64
import hashlib
import secrets
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.contrib.auth import get_user_model

from ..utils import basic_auth, post_form

REDIRECT_URI = "https://app.example/callback"
PASSWORD = "correct horse battery staple"


def pkce_pair():
    """(code_verifier, S256 code_challenge) as RFC 7636 §4.1–4.2 build them."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def query(location):
    """The query parameters of a redirect's Location, one value each."""
    return {key: values[0] for key, values in parse_qs(urlsplit(location).query).items()}


@pytest.fixture
def local_user(db):
    return get_user_model().objects.create_user("carol", "carol@example.com", PASSWORD,
                                                first_name="Carol", last_name="Jones")


@pytest.fixture
def signin_app(make_application):
    """A Traditional OIDC web application (confidential) allowed the Code grant and refresh tokens."""
    return make_application(name="Web app", application_type="traditional",
                            grant_types=["authorization_code", "refresh_token"], scopes="openid profile email",
                            redirect_uris=REDIRECT_URI)


@pytest.fixture
def spa_app(make_application):
    """A single-page application (public: no secret) allowed the Code grant and refresh tokens."""
    return make_application(name="SPA", application_type="spa", grant_types=["authorization_code", "refresh_token"],
                            scopes="openid profile", redirect_uris=REDIRECT_URI)


@pytest.fixture
def authorize_url():
    def build(app, challenge=None, method="S256", **params):
        values = {"response_type": "code", "client_id": app.client_id, "redirect_uri": REDIRECT_URI,
                  "scope": "openid profile", "state": "st-1", "nonce": "n-1"}
        if challenge is not None:
            values["code_challenge"] = challenge
            if method:
                values["code_challenge_method"] = method
        values.update(params)
        return "/oauth2/authorize?" + urlencode({k: v for k, v in values.items() if v is not None})

    return build


@pytest.fixture
def signed_in(client, local_user):
    client.force_login(local_user)
    return client


@pytest.fixture
def get_code(signed_in, authorize_url):
    """Run the authorization request and the consent as the signed-in user; the redirect's parameters
    (one value each) and ``_location``, the whole redirect."""

    def run(app, challenge, **params):
        page = signed_in.get(authorize_url(app, challenge, **params))
        assert page.status_code == 200, page.content[:500]
        form = page.context["form"]
        data = {name: form[name].value() or "" for name in form.fields if name != "allow"}
        answer = signed_in.post("/oauth2/authorize", {**data, "allow": "Authorize"})
        assert answer.status_code == 302, answer.content[:500]
        return {**query(answer["Location"]), "_location": answer["Location"]}

    return run


@pytest.fixture
def redeem(client):
    """POST the code to the token endpoint: Basic for a confidential client, client_id alone for a public one."""
    def run(app, code, verifier, redirect_uri=REDIRECT_URI, **extra):
        body = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                "code_verifier": verifier, **extra}
        headers = {}
        if app.client_type == app.CLIENT_CONFIDENTIAL:
            headers["HTTP_AUTHORIZATION"] = basic_auth(app.client_id, app.raw_secret)
        else:
            body.setdefault("client_id", app.client_id)
        return post_form(client, "/oauth2/token", {k: v for k, v in body.items() if v is not None}, **headers)

    return run
