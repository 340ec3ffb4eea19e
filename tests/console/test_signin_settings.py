"""The Protocol tab's sign-in settings: Authorized redirect URLs and the first-party flag (issue 16)."""

from http import HTTPStatus

from django.contrib.admin.models import LogEntry

from exchange.models import Application


def protocol_url(application):
    return f"/console/exchange/application/{application.pk}/change/?tab=protocol"


def test_redirect_urls_and_first_party_are_saved_and_audited(console_admin_client, make_application):
    app = make_application(name="Web", application_type="traditional", grant_types=())
    response = console_admin_client.post(protocol_url(app), {
        "allowed_grant_types": ["authorization_code", "refresh_token"],
        "redirect_uris": "https://app.example/cb\r\n\r\n  https://app.example/other  \n", "skip_authorization": "on",
    })
    assert response.status_code == HTTPStatus.FOUND
    app.refresh_from_db()
    assert app.redirect_uris == "https://app.example/cb https://app.example/other"
    assert app.skip_authorization is True and app.allowed_grant_types == ["refresh_token", "authorization_code"]
    page = console_admin_client.get(protocol_url(app)).content.decode()
    assert "https://app.example/other" in page and "Authorized redirect URLs" in page
    change = LogEntry.objects.filter(object_id=str(app.pk)).latest("action_time").get_change_message()
    assert "redirect" in change.lower() and "consent" in change.lower()


def test_a_redirect_url_that_cannot_be_one_is_refused(console_admin_client, make_application):
    app = make_application(name="Web", application_type="traditional", grant_types=())
    for bad in ("javascript:alert(1)", "not a url", "https://app.example/cb#fragment"):
        response = console_admin_client.post(protocol_url(app), {"allowed_grant_types": ["authorization_code"],
                                                                 "redirect_uris": bad})
        assert response.status_code == HTTPStatus.OK, bad
        assert response.context["form"].errors.get("redirect_uris"), bad
    assert Application.objects.get(pk=app.pk).redirect_uris == ""
