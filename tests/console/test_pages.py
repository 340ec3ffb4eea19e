"""Console pages rendered with Django's test client: dashboard, lists, wizard, tabs, applications."""

from http import HTTPStatus

import pytest
from django.contrib import admin

from exchange import throttling
from exchange.models import Application, ExchangeEvent, TrustedTokenIssuer

from ..factories import mint
from ..utils import basic_auth, exchange_body, post_form

pytestmark = pytest.mark.django_db


def test_dashboard_counts_and_chart(console_admin_client, pem_issuer, application):
    ExchangeEvent.objects.create(outcome="issued", trusted_issuer=pem_issuer)
    ExchangeEvent.objects.create(outcome="rejected", cause="expired", trusted_issuer=pem_issuer)
    ExchangeEvent.objects.create(outcome="rejected", cause="expired")
    response = console_admin_client.get("/console/")
    assert response.status_code == HTTPStatus.OK
    html = response.content.decode()
    assert 'data-testid="issuer-count">1<' in html
    assert 'data-testid="application-count">1<' in html
    assert "<svg" in html and ">expired<" in html
    assert "1</strong> issued, <strong>2</strong> rejected" in html


def test_console_requires_login(client, db):
    response = client.get("/console/exchange/trustedtokenissuer/new/trusted-token-issuer/")
    assert response.status_code == HTTPStatus.FOUND
    assert "/console/login/" in response["Location"]


def test_lists_and_pages_render(console_admin_client, pem_issuer, jwks_issuer, application):
    for url in (
        "/console/exchange/trustedtokenissuer/",
        "/console/exchange/trustedtokenissuer/new/",
        "/console/exchange/trustedtokenissuer/new/trusted-token-issuer/?new=1",
        "/console/exchange/application/",
        "/console/exchange/application/add/",
        f"/console/exchange/trustedtokenissuer/{pem_issuer.pk}/enabled/",
        f"/console/exchange/application/{application.pk}/secret/",
    ):
        assert console_admin_client.get(url).status_code == HTTPStatus.OK, url
    for issuer in (pem_issuer, jwks_issuer):
        for tab in ("general", "certificates", "validation", "test", "activity"):
            url = f"/console/exchange/trustedtokenissuer/{issuer.pk}/change/?tab={tab}"
            assert console_admin_client.get(url).status_code == HTTPStatus.OK, url
    for tab in ("general", "protocol", "try"):
        url = f"/console/exchange/application/{application.pk}/change/?tab={tab}"
        assert console_admin_client.get(url).status_code == HTTPStatus.OK, url
    assert console_admin_client.get(f"/console/exchange/application/{application.pk}/change/?tab=nope").status_code == 404


def test_test_a_token_explains_each_check(console_admin_client, pem_issuer, rsa_key):
    url = f"/console/exchange/trustedtokenissuer/{pem_issuer.pk}/change/?tab=test"
    import time

    good = mint(rsa_key, pem_issuer.issuer, sub="alice")
    report = console_admin_client.post(url, {"token": good}).context["report"]
    assert report.ok and all(step.ok for step in report.steps)
    # Explaining does not consume the jti: the token can still be exchanged.
    assert console_admin_client.post(url, {"token": good}).context["report"].ok

    expired = mint(rsa_key, pem_issuer.issuer, exp=int(time.time()) - 600, iat=int(time.time()) - 900)
    response = console_admin_client.post(url, {"token": expired})
    report = response.context["report"]
    assert report.cause == "expired"
    html = response.content.decode()
    assert "Rejected (expired): The subject token has expired." in html
    assert 'data-check="expiry"' in html and "✘ fail" in html and "– not checked" in html

    wrong_aud = mint(rsa_key, pem_issuer.issuer, aud="https://someone-else.test")
    report = console_admin_client.post(url, {"token": wrong_aud}).context["report"]
    assert report.cause == "audience_mismatch"
    assert [s.ok for s in report.steps if s.name == "signature"] == [True]


def test_try_it_out_runs_the_real_token_endpoint(console_admin_client, application, pem_issuer, rsa_key):
    url = f"/console/exchange/application/{application.pk}/change/?tab=try"
    page = console_admin_client.get(url).content.decode()
    assert "curl --location &#x27;http://testserver/oauth2/token&#x27;" in page
    assert application.client_id in page and "&lt;client_secret&gt;" in page
    assert "urn:ietf:params:oauth:grant-type:token-exchange" in page

    token = mint(rsa_key, pem_issuer.issuer, sub="alice")
    response = console_admin_client.post(url, {"client_secret": application.raw_secret, "subject_token": token})
    result = response.context["result"]
    assert result["status"] == 200, result
    assert '"sub": "alice"' in result["claims"]
    assert application.raw_secret not in response.content.decode()
    assert ExchangeEvent.objects.filter(outcome="issued", application=application).count() == 1

    # The same token again: the token endpoint's own replay check answers.
    result = console_admin_client.post(url, {"client_secret": application.raw_secret, "subject_token": token}).context["result"]
    assert (result["status"], result["error"]) == (400, "invalid_request")
    assert result["error_description"] == "The subject token has already been used."

    result = console_admin_client.post(url, {"client_secret": "wrong", "subject_token": token}).context["result"]
    assert (result["status"], result["error"]) == (401, "invalid_client")


def test_a_failed_try_never_counts_against_the_administrators_address(console_admin_client, application, settings):
    """Try it out calls the exchange itself, not the endpoint: the client-authentication throttle counts nothing.

    The attack: an administrator testing a wrong secret (or anyone able to make them) would
    otherwise lock the console's own address, and the application, out of the token endpoint.
    """
    settings.TOKEN_EXCHANGE = {**settings.TOKEN_EXCHANGE, "CLIENT_AUTH_MAX_FAILURES_PER_ADDRESS": 1,
                               "CLIENT_AUTH_MAX_FAILURES_PER_CLIENT": 1}
    url = f"/console/exchange/application/{application.pk}/change/?tab=try"
    for _ in range(3):
        result = console_admin_client.post(url, {"client_secret": "wrong", "subject_token": "x.y.z"}).context["result"]
        assert (result["status"], result["error"]) == (401, "invalid_client")
    assert throttling.retry_after(application.client_id, "") == 0
    assert throttling.retry_after("", "127.0.0.1") == 0  # the test client's (the administrator's) address

    # The same failure at the token endpoint counts (with the limit of 1, the next request is refused).
    endpoint = post_form(console_admin_client, "/oauth2/token", exchange_body("x.y.z"),
                         HTTP_AUTHORIZATION=basic_auth(application.client_id, "wrong"))
    assert endpoint.status_code == HTTPStatus.UNAUTHORIZED
    assert throttling.retry_after("", "127.0.0.1") > 0


@pytest.mark.parametrize("model, tab, hidden", [
    ("application", "try", ("client_secret", "subject_token")),
    ("trustedtokenissuer", "test", ("token",)),
])
def test_object_pages_hide_typed_secrets_from_error_reports(console_admin_client, application, pem_issuer, model, tab, hidden):
    """A secret or token typed into a tab never appears in Django's error reports (sensitive_post_parameters)."""
    pk = application.pk if model == "application" else pem_issuer.pk
    response = console_admin_client.post(f"/console/exchange/{model}/{pk}/change/?tab={tab}", {})
    assert response.wsgi_request.sensitive_post_parameters == hidden


@pytest.mark.parametrize("object_id", ["abc", "999999", "1%2F2", "-1"])
def test_object_pages_answer_404_for_any_unknown_id(console_admin_client, object_id):
    """An id that names no object (or is not a number at all) is a 404, never a server error."""
    for model in ("application", "trustedtokenissuer"):
        assert console_admin_client.get(f"/console/exchange/{model}/{object_id}/change/").status_code == HTTPStatus.NOT_FOUND


def test_every_tab_shown_has_its_view():
    """The tab bar and the dispatcher name the same tabs, in both object pages."""
    for model in (Application, TrustedTokenIssuer):
        model_admin = admin.site.get_model_admin(model)
        assert [key for key, _ in model_admin.tabs] == list(model_admin.tab_views())
