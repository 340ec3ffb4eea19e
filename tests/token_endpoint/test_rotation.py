"""Signing-key rotation: publish before use, overlap until old tokens expire, automatic retirement."""

import datetime
import json
import re
from http import HTTPStatus
from io import StringIO

import jwt
import pytest
import time_machine
from cryptography.hazmat.primitives import serialization
from django.conf import settings
from django.core.management import CommandError, call_command
from jwt import PyJWKSet

from exchange import signing
from exchange.models import SigningKey

from ..factories import mint, private_key

START = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.timezone.utc)


def rotate(*args):
    out = StringIO()
    call_command("rotate_signing_key", "--json", *args, stdout=out, stderr=StringIO())
    return json.loads(out.getvalue())


def published_kids(client):
    return {key["kid"] for key in client.get("/oauth2/jwks").json()["keys"]}


class ResourceServer:
    """Verifies access tokens with a JWKS it caches for as long as /oauth2/jwks's Cache-Control allows.

    It never refetches early on an unknown kid: any verification gap in the rotation shows up as a failure.
    """

    def __init__(self, client):
        self.client = client
        self.keys = None
        self.expires = None
        self.fetches = 0

    def _jwks(self, now):
        if self.keys is None or now >= self.expires:
            response = self.client.get("/oauth2/jwks")
            max_age = int(re.search(r"max-age=(\d+)", response["Cache-Control"]).group(1))
            self.keys = {k.key_id: k for k in PyJWKSet.from_dict(response.json()).keys}
            self.expires = now + max_age
            self.fetches += 1
        return self.keys

    def verify(self, token, now):
        header = jwt.get_unverified_header(token)
        key = self._jwks(now).get(header["kid"])
        assert key is not None, f"kid {header['kid']} not in the cached JWKS at {now}"
        return jwt.decode(token, key, algorithms=[header["alg"]], options={"verify_aud": False},
                          issuer=settings.CONSOLE_ISSUER)


def issue(lifetime=3600):
    return signing.issue_access_token(sub="alice", client_id="c", scope="", audience="c", lifetime=lifetime)


@pytest.mark.django_db
def test_rotation_has_no_verification_gap(client):
    """Issue a token every minute across a whole rotation; a caching resource server verifies every live one."""
    with time_machine.travel(START, tick=False) as clock:
        resource_server = ResourceServer(client)
        old_kid = signing.active_key().kid
        live = []  # (token, exp)
        result = None
        for minute in range(0, 130):
            now = START.timestamp() + minute * 60
            clock.move_to(datetime.datetime.fromtimestamp(now, datetime.timezone.utc))
            if minute == 3:
                result = rotate()  # default: published now, signing 600 s later
                assert signing.active_key().kid == old_kid
            token = issue()
            live.append((token, now + 3600))
            live = [(t, exp) for t, exp in live if exp > now]
            for t, _ in live:
                assert resource_server.verify(t, now)["sub"] == "alice"
        new_kid = result["kid"]
        assert jwt.get_unverified_header(live[-1][0])["kid"] == new_kid
        # Old tokens are all expired by now and the old key retired: unpublished, private half erased.
        assert published_kids(client) == {new_kid}
        old = SigningKey.objects.get(kid=old_kid)
        assert old.retired_at is not None and old.private_pem == "" and not old.active
        assert resource_server.fetches > 1


@pytest.mark.django_db
def test_new_key_published_at_once_and_signs_after_publish_ahead(client, settings):
    settings.TOKEN_EXCHANGE = {"SIGNING_KEY_PUBLISH_AHEAD_SECONDS": 300}
    with time_machine.travel(START, tick=False) as clock:
        old_kid = signing.active_key().kid
        result = rotate()
        assert result["signs_from"] == (START + datetime.timedelta(seconds=300)).isoformat()
        assert result["superseded"] == [
            {"kid": old_kid, "retire_after": (START + datetime.timedelta(seconds=300 + 3600 + 30 + 60)).isoformat()}
        ]
        assert published_kids(client) == {old_kid, result["kid"]}
        assert jwt.get_unverified_header(issue())["kid"] == old_kid
        clock.shift(299)
        assert jwt.get_unverified_header(issue())["kid"] == old_kid
        clock.shift(1)
        assert jwt.get_unverified_header(issue())["kid"] == result["kid"]
        clock.shift(3600 + 30 + 60 - 1)
        assert published_kids(client) == {old_kid, result["kid"]}
        clock.shift(1)
        assert published_kids(client) == {result["kid"]}


@pytest.mark.django_db
def test_retirement_waits_for_the_longest_application_lifetime(client, make_application):
    make_application(name="Long-lived", access_token_lifetime=7200)
    with time_machine.travel(START, tick=False):
        old_kid = signing.active_key().kid
        result = rotate("--publish-ahead", "0")
        assert result["superseded"][0]["kid"] == old_kid
        assert result["superseded"][0]["retire_after"] == (START + datetime.timedelta(seconds=7200 + 30 + 60)).isoformat()


@pytest.mark.django_db
def test_rotate_to_es256(client, exchange, pem_issuer, rsa_key):
    with time_machine.travel(datetime.datetime.now(datetime.timezone.utc), tick=False) as clock:
        result = rotate("--algorithm", "ES256", "--publish-ahead", "60")
        assert result["algorithm"] == "ES256"
        clock.shift(60)
        response = exchange(mint(rsa_key, pem_issuer.issuer))
        assert response.status_code == HTTPStatus.OK
        header = jwt.get_unverified_header(response.json()["access_token"])
        assert (header["alg"], header["kid"]) == ("ES256", result["kid"])


@pytest.mark.django_db
def test_every_worker_picks_up_a_key_rotated_elsewhere(settings):
    """A key created by another process is used here after at most SIGNING_KEY_RELOAD_SECONDS."""
    settings.TOKEN_EXCHANGE = {"SIGNING_KEY_RELOAD_SECONDS": 30}
    with time_machine.travel(START, tick=False) as clock:
        old_kid = signing.active_key().kid  # this worker has loaded the key list
        other = signing.create_signing_key("ES256")  # "another process": this one is not told
        assert signing.active_key().kid == old_kid
        clock.shift(30)
        assert signing.active_key().kid == other.kid


@pytest.mark.django_db
def test_pending_key_known_in_advance_switches_everywhere_at_once(settings):
    settings.TOKEN_EXCHANGE = {"SIGNING_KEY_RELOAD_SECONDS": 30}
    with time_machine.travel(START, tick=False) as clock:
        old_kid = signing.active_key().kid
        new, _ = signing.rotate_signing_key(publish_ahead=120)
        signing._ring = None  # another worker loading the list now, before activation
        assert signing.active_key().kid == old_kid
        clock.shift(119)
        assert signing.active_key().kid == old_kid
        clock.shift(1)
        assert signing.active_key().kid == new.kid  # from the list it already holds


def _write_key(path, key):
    path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return str(path)


@pytest.mark.django_db
def test_keys_from_files(client, settings, tmp_path):
    current = private_key("rsa", "signing-current")
    previous = private_key("ec", "signing-previous")
    settings.TOKEN_EXCHANGE = {
        "SIGNING_KEY_FILE": _write_key(tmp_path / "current.pem", current),
        "SIGNING_PUBLISHED_KEY_FILES": [_write_key(tmp_path / "previous.pem", previous)],
    }
    keys = client.get("/oauth2/jwks").json()["keys"]
    assert [(k["kty"], k["alg"]) for k in keys] == [("RSA", "RS256"), ("EC", "ES256")]
    assert all("d" not in k for k in keys)
    assert jwt.get_unverified_header(issue())["kid"] == keys[0]["kid"]
    with pytest.raises(CommandError, match="SIGNING_KEY_FILE"):
        rotate()
    assert not SigningKey.objects.exists()


@pytest.mark.django_db
def test_database_keys_stay_published_after_switching_to_a_file(client, settings, tmp_path):
    database_kid = signing.active_key().kid
    settings.TOKEN_EXCHANGE = {"SIGNING_KEY_FILE": _write_key(tmp_path / "k.pem", private_key("ec", "signing-file"))}
    signing.reset()
    file_kid = signing.active_key().kid
    assert published_kids(client) == {file_kid, database_kid}


def test_publish_ahead_shorter_than_reload_is_flagged(settings):
    from django.core.checks import run_checks

    settings.TOKEN_EXCHANGE = {"SIGNING_KEY_PUBLISH_AHEAD_SECONDS": 10, "SIGNING_KEY_RELOAD_SECONDS": 30}
    assert "exchange.W002" in {problem.id for problem in run_checks()}
    settings.TOKEN_EXCHANGE = {}
    assert "exchange.W002" not in {problem.id for problem in run_checks()}
