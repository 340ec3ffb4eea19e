"""Helpers of the management-API tests: a JSON client, the RFC 9457 problem check, a bearer token.

The fixtures built on them are in tests/api/conftest.py."""

import json

from django.conf import settings
from django.utils.crypto import get_random_string

from ..utils import basic_auth, post_form

API = "/api/server/v1"
PROBLEM = "application/problem+json"


def obtain_token(client, application, secret, scope="console:manage"):
    """A client_credentials access token from the real token endpoint."""
    response = post_form(
        client, "/oauth2/token", {"grant_type": "client_credentials", "scope": scope},
        HTTP_AUTHORIZATION=basic_auth(application.client_id, secret),
    )
    assert response.status_code == 200, response.content
    return response.json()["access_token"]


class APIClient:
    """JSON requests against the API with a fixed Authorization header (or none)."""

    def __init__(self, client, authorization=None):
        self.client = client
        self.headers = {"HTTP_AUTHORIZATION": authorization} if authorization else {}

    def _send(self, method, path, data=None, **extra):
        url = path if path.startswith("/") else f"{API}/{path}"
        kwargs = {**self.headers, **extra}
        if data is not None:
            kwargs["data"] = json.dumps(data)
            kwargs["content_type"] = "application/json"
        return getattr(self.client, method)(url, **kwargs)

    def get(self, path, **extra):
        return self._send("get", path, **extra)

    def post(self, path, data=None, **extra):
        return self._send("post", path, data if data is not None else {}, **extra)

    def patch(self, path, data=None, **extra):
        return self._send("patch", path, data if data is not None else {}, **extra)

    def put(self, path, data=None, **extra):
        return self._send("put", path, data if data is not None else {}, **extra)

    def delete(self, path, **extra):
        return self._send("delete", path, **extra)


def assert_problem(response, status, field=None, contains=None):
    """An RFC 9457 problem with ``status``; optionally naming ``field`` and containing ``contains``."""
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith(PROBLEM), response["Content-Type"]
    body = response.json()
    assert body["status"] == status
    assert body["type"] == "about:blank"
    assert body["title"] and body["code"] and isinstance(body["detail"], str)
    if field is not None:
        assert field in body["errors"], body
    if contains is not None:
        text = " ".join(body.get("errors", {}).get(field, [])) if field else body["detail"]
        assert contains in text, body
    return body


def csrf_headers(client):
    """Give the client a CSRF cookie (as the console's pages set it) and return the matching header."""
    token = get_random_string(32)
    client.cookies[settings.CSRF_COOKIE_NAME] = token
    return {"HTTP_X_CSRFTOKEN": token}
