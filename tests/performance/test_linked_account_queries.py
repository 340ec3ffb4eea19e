"""Round trips that linked accounts add to an exchange: none when the application does not use them.

The pin of ``test_performance_invariants.EXCHANGE_QUERIES`` holds for applications whose
*attribute resolution for linked accounts* is *Disabled* (the default): the grant reads nothing
more. An application that uses links reads the (issuer, sub) link with its user and their local
subject (one SELECT), and the user's role scopes when a scope was requested (one SELECT).
"""

from http import HTTPStatus

import pytest
from django.contrib.auth.models import Group, User

from exchange import flows

from ..factories import mint
from ..utils import basic_auth, exchange_body, post_form
from .test_performance_invariants import EXCHANGE_QUERIES


@pytest.mark.parametrize("mode, scope, added", [
    ("disabled", "openid", 0),
    ("use", None, 1),
    ("use", "openid", 2),
    ("require", "openid", 2),
])
def test_linked_accounts_add_at_most_two_reads(client, make_application, pem_issuer, rsa_key,
                                               django_assert_num_queries, mode, scope, added):
    app = make_application(name="Linked", scopes="openid", linked_accounts=mode)
    user = User.objects.create_user("pinned")
    role = Group.objects.create(name="pinned-role")
    flows.set_role_scopes(role, "openid")
    user.groups.add(role)
    flows.link_identity(pem_issuer, "alice", user)

    def exchange():
        return post_form(client, "/oauth2/token", exchange_body(mint(rsa_key, pem_issuer.issuer), scope=scope),
                         HTTP_AUTHORIZATION=basic_auth(app.client_id, app.raw_secret))

    assert exchange().status_code == HTTPStatus.OK  # fills the caches
    with django_assert_num_queries(EXCHANGE_QUERIES + added) as captured:
        assert exchange().status_code == HTTPStatus.OK
    linked = [q["sql"] for q in captured.captured_queries if "exchange_linkedidentity" in q["sql"]]
    assert len(linked) == (1 if added else 0)
