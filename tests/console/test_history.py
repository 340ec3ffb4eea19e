"""Every change made in the console is written to Django's LogEntry: the object's History page shows it."""

from http import HTTPStatus

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType

from exchange import flows
from exchange.models import Application, TrustedTokenIssuer

from ..factories import certificate_pem, private_key

pytestmark = pytest.mark.django_db

WIZARD = "/console/exchange/trustedtokenissuer/new/trusted-token-issuer/"


@pytest.fixture
def operator(db):
    return get_user_model().objects.create_superuser("operator", "operator@example.com", "pw")


@pytest.fixture
def operator_client(client, operator):
    """The ``client`` fixture signed in as the superuser ``operator``."""
    client.force_login(operator)
    return client


def issuer_page(trusted, tab=""):
    return f"/console/exchange/trustedtokenissuer/{trusted.pk}/change/" + (f"?tab={tab}" if tab else "")


def app_page(application, tab=""):
    return f"/console/exchange/application/{application.pk}/change/" + (f"?tab={tab}" if tab else "")


def entries(obj):
    """The LogEntries of ``obj``, oldest first."""
    content_type = ContentType.objects.get_for_model(obj)
    return list(LogEntry.objects.filter(content_type=content_type, object_id=str(obj.pk)).order_by("pk"))


def only_entry(obj, user, action_flag=CHANGE):
    """The one LogEntry ``obj`` has: by ``user``, with this action, naming the object as it is now."""
    [entry] = entries(obj)
    obj.refresh_from_db()
    assert (entry.user, entry.action_flag, entry.object_repr) == (user, action_flag, str(obj))
    return entry


def test_disabling_and_enabling_an_issuer(operator_client, operator, pem_issuer):
    toggle = f"/console/exchange/trustedtokenissuer/{pem_issuer.pk}/enabled/"
    assert operator_client.post(toggle).status_code == HTTPStatus.FOUND
    assert only_entry(pem_issuer, operator).get_change_message() == "Disabled."
    operator_client.post(toggle)
    assert [e.get_change_message() for e in entries(pem_issuer)] == ["Disabled.", "Enabled."]


def test_the_confirmation_page_changes_nothing_and_writes_nothing(operator_client, pem_issuer, application):
    operator_client.get(f"/console/exchange/trustedtokenissuer/{pem_issuer.pk}/enabled/")
    operator_client.get(f"/console/exchange/application/{application.pk}/secret/")
    assert entries(pem_issuer) == entries(application) == []


def test_renaming_an_issuer_on_the_general_tab(operator_client, operator, pem_issuer):
    data = {"name": "Renamed issuer", "issuer": pem_issuer.issuer, "alias": pem_issuer.alias}
    assert operator_client.post(issuer_page(pem_issuer, "general"), data).status_code == HTTPStatus.FOUND
    entry = only_entry(pem_issuer, operator)
    assert entry.object_repr == "Renamed issuer"
    assert entry.get_change_message() == "Changed Trusted token issuer name."


def test_a_refused_edit_writes_nothing(operator_client, pem_issuer, jwks_issuer):
    data = {"name": jwks_issuer.name, "issuer": pem_issuer.issuer, "alias": ""}  # the name is taken
    assert operator_client.post(issuer_page(pem_issuer, "general"), data).status_code == HTTPStatus.OK
    assert entries(pem_issuer) == []


def test_validation_settings(operator_client, operator, pem_issuer):
    data = {"allowed_algorithms": ["RS256"], "clock_skew": "30", "max_token_age": "600", "required_type": ""}
    assert operator_client.post(issuer_page(pem_issuer, "validation"), data).status_code == HTTPStatus.FOUND
    message = only_entry(pem_issuer, operator).get_change_message()
    assert message.startswith("Changed ") and "Allowed signing algorithms" in message


def test_jwks_endpoint_update(operator_client, operator, jwks_issuer, jwks_server):
    data = {"action": "jwks", "jwks_uri": jwks_server.url + "?v=2"}
    assert operator_client.post(issuer_page(jwks_issuer, "certificates"), data).status_code == HTTPStatus.FOUND
    assert only_entry(jwks_issuer, operator).get_change_message() == "Changed JWKS endpoint URL."


def test_adding_and_removing_certificates(operator_client, operator, pem_issuer):
    url = issuer_page(pem_issuer, "certificates")
    pem = certificate_pem(private_key("rsa", "next-key"))
    assert operator_client.post(url, {"action": "add", "pem": pem}).status_code == HTTPStatus.FOUND
    added = pem_issuer.certificates.order_by("-pk").first()
    assert only_entry(pem_issuer, operator).get_change_message() == f"Added issuer certificate “{added}”."

    assert operator_client.post(url, {"action": "remove", "certificate": added.pk}).status_code == HTTPStatus.FOUND
    assert entries(pem_issuer)[-1].get_change_message() == f"Deleted issuer certificate “{added}”."
    assert entries(pem_issuer)[-1].user == operator


def test_removing_the_last_certificate_is_refused_and_writes_nothing(operator_client, pem_issuer):
    only = pem_issuer.certificates.get()
    operator_client.post(issuer_page(pem_issuer, "certificates"), {"action": "remove", "certificate": only.pk})
    assert pem_issuer.certificates.count() == 1
    assert entries(pem_issuer) == []


def test_the_wizard_creation(operator_client, operator):
    operator_client.get(WIZARD + "?new=1")
    operator_client.post(WIZARD, {"name": "Partner IdP", "issuer": "https://idp.partner.test", "alias": ""})
    pem = certificate_pem(private_key("rsa", "partner"))
    step2 = WIZARD + "certificate/"
    operator_client.post(step2, {"mode": "pem", "pem": pem, "action": "inspect"})  # its details shown first
    assert operator_client.post(step2, {"mode": "pem", "pem": pem, "action": "finish"}).status_code == HTTPStatus.FOUND
    trusted = TrustedTokenIssuer.objects.get(issuer="https://idp.partner.test")
    assert only_entry(trusted, operator, ADDITION).get_change_message() == "Added."


def test_creating_an_application(operator_client, operator):
    data = {"name": "Shop", "application_type": Application.Type.STANDARD}
    assert operator_client.post("/console/exchange/application/add/", data).status_code == HTTPStatus.FOUND
    assert only_entry(Application.objects.get(name="Shop"), operator, ADDITION).get_change_message() == "Added."


def test_regenerating_a_secret(operator_client, operator, application):
    url = f"/console/exchange/application/{application.pk}/secret/"
    assert operator_client.post(url).status_code == HTTPStatus.FOUND
    assert only_entry(application, operator).get_change_message() == "Client secret regenerated."


def test_renaming_an_application(operator_client, operator, application):
    data = {"name": "Renamed app", "allowed_scopes": ""}
    assert operator_client.post(app_page(application, "general"), data).status_code == HTTPStatus.FOUND
    entry = only_entry(application, operator)
    assert entry.object_repr == "Renamed app"
    assert entry.get_change_message() == "Changed Name."


def test_protocol_tab_names_the_fields_that_changed(operator_client, operator, application):
    data = {"allowed_grant_types": application.allowed_grant_types, "access_token_lifetime": "120",
            "allowed_audiences": ""}
    assert operator_client.post(app_page(application, "protocol"), data).status_code == HTTPStatus.FOUND
    assert only_entry(application, operator).get_change_message() == "Changed Access token lifetime (seconds)."


def test_trying_a_token_changes_nothing_and_writes_nothing(operator_client, application):
    operator_client.post(app_page(application, "try"), {"client_secret": "wrong", "subject_token": "x.y.z"})
    assert entries(application) == []


def test_the_history_page_shows_the_entries(operator_client, operator, pem_issuer):
    flows.set_issuer_enabled(pem_issuer, True)  # a change outside the console is not in History
    operator_client.post(f"/console/exchange/trustedtokenissuer/{pem_issuer.pk}/enabled/")
    history = f"/console/exchange/trustedtokenissuer/{pem_issuer.pk}/history/"
    assert f'href="{history}"' in operator_client.get(issuer_page(pem_issuer)).content.decode()
    page = operator_client.get(history)
    assert page.status_code == HTTPStatus.OK
    assert "Disabled." in page.content.decode() and "operator" in page.content.decode()


def test_the_application_page_links_to_its_history(operator_client, application):
    history = f"/console/exchange/application/{application.pk}/history/"
    assert f'href="{history}"' in operator_client.get(app_page(application)).content.decode()
    assert operator_client.get(history).status_code == HTTPStatus.OK
