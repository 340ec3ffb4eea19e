"""A revocation by provenance racing an exchange from the same issuer, with threads on the real database.

Whatever the interleaving, no live token is left from an exchange under way when the revocation
began (flows.revoke_tokens, storage._check_not_revoked): either the revocation, waiting for the
exchange's transaction, revokes its token, or the exchange sees the revocation and is refused.
"""

import threading
import time
from http import HTTPStatus

import pytest
from django.db import connections
from django.test import Client
from django.utils import timezone

from exchange import flows, grant, storage
from exchange.models import AccessToken

from ..factories import mint
from ..utils import basic_auth, exchange_body, introspected, post_form

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 20  # seconds: a bound on every wait, so a broken interleaving fails instead of hanging


class Thread(threading.Thread):
    """A thread that keeps its result or exception and closes its database connection."""

    def __init__(self, target):
        super().__init__(daemon=True)
        self.target, self.result, self.error = target, None, None

    def run(self):
        try:
            self.result = self.target()
        except BaseException as exc:  # noqa: BLE001  (re-raised by outcome() in the test's thread)
            self.error = exc
        finally:
            connections.close_all()

    def outcome(self):
        self.join(WAIT)
        assert not self.is_alive(), "the thread did not finish"
        if self.error is not None:
            raise self.error
        return self.result


def _exchange(app, token):
    return post_form(Client(), "/oauth2/token", exchange_body(token),
                     HTTP_AUTHORIZATION=basic_auth(app.client_id, app.raw_secret))


def _live_tokens(trusted):
    return AccessToken.objects.filter(trusted_issuer=trusted, expires__gt=timezone.now()).count()


def _wait_for(condition):
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _pause_after(monkeypatch, module, name):
    """Make ``module.name`` stop after it ran, until released; (reached, release) events."""
    original = getattr(module, name)
    reached, release = threading.Event(), threading.Event()

    def paused(*args, **kwargs):
        result = original(*args, **kwargs)
        reached.set()
        assert release.wait(WAIT)
        return result

    monkeypatch.setattr(module, name, paused)
    return reached, release


def test_a_revocation_between_validation_and_write_refuses_the_exchange(monkeypatch, application, pem_issuer, rsa_key):
    """The subject token passed before the revocation; the token would be written after it: refused."""
    validated, release = _pause_after(monkeypatch, grant, "check_subject_token")
    exchange = Thread(lambda: _exchange(application, mint(rsa_key, pem_issuer.issuer, sub="alice")))
    exchange.start()
    assert validated.wait(WAIT)
    flows.revoke_tokens(pem_issuer)  # runs and commits while the exchange waits
    release.set()
    response = exchange.outcome()
    assert response.status_code == HTTPStatus.BAD_REQUEST, response.content
    assert response.json()["error"] == "invalid_request"
    assert "revoked" in response.json()["error_description"]
    assert _live_tokens(pem_issuer) == 0


def test_a_revocation_waits_for_an_exchange_writing_and_revokes_its_token(monkeypatch, application, pem_issuer, rsa_key):
    """The exchange is inside its write transaction when the revocation begins: the revocation waits, then revokes."""
    writing, release = _pause_after(monkeypatch, storage, "_check_not_revoked")
    exchange = Thread(lambda: _exchange(application, mint(rsa_key, pem_issuer.issuer, sub="alice")))
    exchange.start()
    assert writing.wait(WAIT)
    revocation = Thread(lambda: flows.revoke_tokens(pem_issuer))
    revocation.start()
    time.sleep(0.5)
    assert revocation.is_alive(), "the revocation must wait for the exchange's transaction"
    release.set()
    response = exchange.outcome()
    result = revocation.outcome()
    assert response.status_code == HTTPStatus.OK, response.content
    assert result.access_tokens == 1
    assert introspected(Client(), application, response.json()["access_token"]) == {"active": False}
    assert _live_tokens(pem_issuer) == 0


def test_many_exchanges_racing_one_revocation_leave_nothing_from_before_it(monkeypatch, make_application,
                                                                         pem_issuer, rsa_key):
    """Exchanges in threads while a revocation runs: every live token comes from an exchange begun after it began.

    An exchange begins when the token endpoint starts on it (``ExchangeRequest.started``: before the
    client and the subject token are checked), recorded here per issued token.
    """
    app = make_application(name="Racer", grant_types=["token_exchange"])
    began = {}  # access token -> when the server began its exchange
    original_issue = grant.issue

    def recording_issue(request):
        body, access_token_id = original_issue(request)
        began[body["access_token"]] = request.started
        return body, access_token_id

    monkeypatch.setattr(grant, "issue", recording_issue)
    stop = threading.Event()

    def exchanging():
        refused = 0
        while not stop.is_set():
            response = _exchange(app, mint(rsa_key, pem_issuer.issuer, sub="alice"))
            if response.status_code != HTTPStatus.OK:
                assert "revoked" in response.json()["error_description"], response.content
                refused += 1
        return refused

    threads = [Thread(exchanging) for _ in range(3)]
    for thread in threads:
        thread.start()
    _wait_for(lambda: len(began) >= 3)
    revocation_began = timezone.now()
    flows.revoke_tokens(pem_issuer)
    _wait_for(lambda: sum(start >= revocation_began for start in list(began.values())) >= 3)
    stop.set()
    for thread in threads:
        thread.outcome()
    before = [token for token, start in began.items() if start < revocation_began]
    after = [token for token, start in began.items() if start >= revocation_began]
    assert before and after, "the exchanges did not run on both sides of the revocation"
    for token in before:
        assert introspected(Client(), app, token) == {"active": False}
