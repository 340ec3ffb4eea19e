"""Revoking the actor token issuer's tokens while a delegation is under way (issue 17), with threads on the real
database: the delegated token is refused, or written and then revoked; never left live."""

from http import HTTPStatus

import pytest
from django.test import Client
from django.utils import timezone

from exchange import flows, grant
from exchange.models import AccessToken, ExchangeEvent

from ..factories import mint
from ..utils import basic_auth, post_form
from .test_revocation_race import WAIT, Thread, _pause_after

pytestmark = pytest.mark.django_db(transaction=True)

JWT = "urn:ietf:params:oauth:token-type:jwt"


def test_a_revocation_of_the_actors_issuer_between_validation_and_write_refuses_the_delegation(
        monkeypatch, make_application, pem_issuer, rsa_key, actor_issuer, actor_key):
    app = make_application(name="Agent", allow_delegation=True, actor_issuers=[actor_issuer])
    form = {"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": mint(rsa_key, pem_issuer.issuer), "subject_token_type": JWT,
            "actor_token": mint(actor_key, actor_issuer.issuer, sub="svc"), "actor_token_type": JWT}
    validated, release = _pause_after(monkeypatch, grant, "check_actor")
    exchange = Thread(lambda: post_form(Client(), "/oauth2/token", form,
                                        HTTP_AUTHORIZATION=basic_auth(app.client_id, app.raw_secret)))
    exchange.start()
    assert validated.wait(WAIT)
    flows.revoke_tokens(actor_issuer)  # the actor's issuer, not the subject's
    release.set()
    response = exchange.outcome()
    assert response.status_code == HTTPStatus.BAD_REQUEST, response.content
    assert response.json()["error_description"] == (
        "The tokens of the actor token's issuer were revoked while this request was processed; try again.")
    assert ExchangeEvent.objects.latest("pk").cause == "actor_tokens_revoked"
    assert not AccessToken.objects.filter(expires__gt=timezone.now()).exists()
