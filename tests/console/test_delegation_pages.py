"""The console's delegation settings (Protocol tab), Test a token as an actor, and the event page (issue 17)."""

from http import HTTPStatus

from django.contrib.admin.models import LogEntry

from exchange.models import Application, ExchangeEvent

from ..factories import mint
from ..utils import basic_auth, post_form

ACTOR_ISS = "https://actor.issuer.test"
JWT = "urn:ietf:params:oauth:token-type:jwt"



def test_the_protocol_tab_turns_delegation_on_for_chosen_issuers(console_admin_client, application, actor_issuer):
    page = f"/console/exchange/application/{application.pk}/change/?tab=protocol"
    html = console_admin_client.get(page).content.decode()
    assert 'name="allow_delegation"' in html and 'name="actor_issuers"' in html and "Actor issuer" in html
    data = {"allowed_grant_types": application.allowed_grant_types, "access_token_lifetime": "",
            "allowed_audiences": "", "bound_to_subject_token": "on"}
    response = console_admin_client.post(page, {**data, "allow_delegation": "on", "actor_issuers": [actor_issuer.pk]})
    assert response.status_code == HTTPStatus.FOUND
    application = Application.objects.get(pk=application.pk)
    assert application.allow_delegation is True and list(application.actor_issuers.all()) == [actor_issuer]
    history = LogEntry.objects.filter(object_id=str(application.pk)).latest("pk").get_change_message()
    assert "Allow delegation" in history and "Actor token issuers" in history
    # off again; the chosen issuers stay (delegation is the switch)
    assert console_admin_client.post(page, {**data, "actor_issuers": [actor_issuer.pk]}).status_code == HTTPStatus.FOUND
    assert Application.objects.get(pk=application.pk).allow_delegation is False


def test_an_unknown_actor_issuer_is_a_form_error(console_admin_client, application):
    page = f"/console/exchange/application/{application.pk}/change/?tab=protocol"
    data = {"allowed_grant_types": application.allowed_grant_types, "allowed_audiences": "", "actor_issuers": ["999"]}
    response = console_admin_client.post(page, data)
    assert response.status_code == HTTPStatus.OK and response.context["form"].errors["actor_issuers"]


def test_test_a_token_explains_an_actor_token(console_admin_client, make_application, actor_key, actor_issuer):
    key = actor_key
    url = f"/console/exchange/trustedtokenissuer/{actor_issuer.pk}/change/?tab=test"
    plain = make_application(name="Plain")
    agent = make_application(name="Agent", allow_delegation=True, actor_issuers=[actor_issuer])
    token = mint(key, ACTOR_ISS, sub="svc", act={"sub": "gateway"})
    response = console_admin_client.post(url, {"token": token, "role": "actor", "application": agent.pk})
    html = response.content.decode()
    assert "Valid: this token would be accepted as an actor token." in html
    assert f"act: gateway ({ACTOR_ISS})" in html and 'data-check="delegation"' in html
    response = console_admin_client.post(url, {"token": token, "role": "actor", "application": plain.pk})
    html = response.content.decode()
    assert ("Rejected (actor_issuer_not_allowed): The actor token&#x27;s issuer is not accepted for delegation "
            "by this client.") in html
    assert "The client is not allowed to use delegation (actor_token)." in html  # delegation-refusal note
    expired = mint(key, ACTOR_ISS, sub="svc", exp=1)
    html = console_admin_client.post(url, {"token": expired, "role": "actor"}).content.decode()
    assert "Rejected (actor_expired): The actor token has expired." in html


def test_the_event_page_shows_the_actor(console_admin_client, client, make_application, pem_issuer, rsa_key,
                                       actor_key, actor_issuer):
    key = actor_key
    app = make_application(name="Agent", allow_delegation=True, actor_issuers=[actor_issuer])
    form = {"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": mint(rsa_key, pem_issuer.issuer, may_act={"sub": "other", "iss": ACTOR_ISS}),
            "subject_token_type": JWT, "actor_token": mint(key, ACTOR_ISS, sub="svc"), "actor_token_type": JWT}
    assert post_form(client, "/oauth2/token", form,
                     HTTP_AUTHORIZATION=basic_auth(app.client_id, app.raw_secret)).status_code == HTTPStatus.BAD_REQUEST
    event = ExchangeEvent.objects.get()
    html = console_admin_client.get(f"/console/exchange/exchangeevent/{event.pk}/change/").content.decode()
    assert "Actor (act)" in html and "svc" in html and "Actor issuer" in html
    assert "The actor is not the party the subject token allows to act for it (may_act)." in html
    assert "may_act names another party" in html  # the remedy
