"""The management API's sign-in settings of an application: redirect_uris (a list) and skip_authorization."""

from http import HTTPStatus

from .helpers import assert_problem


def test_create_read_and_change_redirect_uris(api):
    body = api.post("applications", {
        "name": "Web", "application_type": "traditional", "allowed_grant_types": ["authorization_code"],
        "redirect_uris": ["https://app.example/cb", "https://app.example/other"], "skip_authorization": True,
    }).json()
    assert body["redirect_uris"] == ["https://app.example/cb", "https://app.example/other"]
    assert body["skip_authorization"] is True
    changed = api.patch(f"applications/{body['id']}", {"redirect_uris": ["https://app.example/new"],
                                                      "skip_authorization": False})
    assert changed.status_code == HTTPStatus.OK, changed.content
    assert (changed.json()["redirect_uris"], changed.json()["skip_authorization"]) == (["https://app.example/new"], False)


def test_bad_redirect_uris_are_problems(api):
    for bad in (["has space"], [""], "https://not-a-list.example", ["javascript:alert(1)"], ["https://x.example/#f"]):
        response = api.post("applications", {"name": "Bad", "allowed_grant_types": ["authorization_code"],
                                              "redirect_uris": bad})
        assert_problem(response, HTTPStatus.BAD_REQUEST)
        assert any(key.startswith("redirect_uris") for key in response.json()["errors"]), (bad, response.json())
