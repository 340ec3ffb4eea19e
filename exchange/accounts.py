"""Local users, their roles' scopes and their linked external identities: whom an exchanged token is for.

Local users are Django users (``is_active`` false: disabled). Local roles are Django groups; a group's
scopes are its ``RoleScopes`` row. An external identity (trusted issuer, external ``sub``) may be linked
to one local user (``LinkedIdentity``): explicitly by an administrator (flows.link_identity), or
implicitly at exchange time by the issuer's lookup attributes (``implicit_match``).

An application's *attribute resolution for linked accounts* (``Application.linked_accounts``) says what
an exchange does with a link (``resolve``, called by the grant's ``resolve_local_account``, by the
console's *Test a token* tab and by ``explain_token``; it only reads):

- *Disabled*: nothing is looked up; the token is for the external identity.
- *Use*: a linked local user gets the token (``sub`` = their local subject, ``sub_id`` = the external
  identity, scopes narrowed to their roles'); otherwise the external identity does.
- *Require*: as *Use*, but an exchange without a linked local user is refused.

Account takeover is what implicit linking risks, so it is narrow: an email is matched only when the
subject token says ``email_verified: true``; a value must match exactly one local user (two users
sharing an email: no link); staff, superusers and service accounts are never linked (neither
implicitly nor by an administrator), and a link to a user who has become one is refused at exchange.
"""

from typing import NamedTuple

from django.contrib.auth import get_user_model
from django.db.models.signals import post_save

from .models import Application, LinkedIdentity, LocalAccount, RoleScopes

#: Cause code → fixed sentence of each refusal (on the ExchangeEvent and in ``error_description``).
CAUSES = {
    "lookup_attributes_missing": "Configured lookup attributes not found in the subject token.",
    "local_account_required": "Use mapped local subject is mandatory but a local user couldn't be found",
    "local_user_disabled": "Local user authorization failed.",
    "local_user_not_linkable": "Local user authorization failed.",
}
#: Cause code → RFC 6749 §5.2 ``error``. The subject token itself is valid when the local user is
#: refused; RFC 6749 §5.2 has no ``access_denied`` at the token endpoint, and ``invalid_grant`` is
#: its answer for a grant whose owner can no longer use it (revoked). A missing attribute or link
#: is a request this application's settings cannot serve: ``invalid_request``, as WSO2 answers.
ERRORS = {
    "lookup_attributes_missing": "invalid_request",
    "local_account_required": "invalid_request",
    "local_user_disabled": "invalid_grant",
    "local_user_not_linkable": "invalid_grant",
}

#: The subject-token claim each fixed lookup attribute is read from (``custom``: the issuer names it).
LOOKUP_CLAIMS = {"username": "preferred_username", "email": "email"}
#: The longest value looked up per attribute (Django's username and email columns, our custom column).
_MAX_LENGTH = {"username": 150, "email": 254, "custom": 255}


class LinkRefused(Exception):
    """The exchange is refused for its local account: ``cause`` (a key of CAUSES), ``error``, ``description``."""

    def __init__(self, cause):
        super().__init__(cause)
        self.cause = cause
        self.error = ERRORS[cause]
        self.description = CAUSES[cause]


class Resolution(NamedTuple):
    """What an exchange is for: ``user`` (None: the external identity) through ``link``.

    ``new_link``: an implicit link to create (not saved yet: the grant saves it through flows).
    ``detail``: one line for explanations (*Test a token*, ``explain_token``), which save nothing.
    """

    user: object
    link: object
    detail: str
    new_link: bool = False


def scopes_for_user(user):
    """The scopes a local user holds: the union of their groups' ``RoleScopes`` (one query)."""
    scopes = set()
    for value in RoleScopes.objects.filter(group__user=user).values_list("scopes", flat=True):
        scopes.update(value.split())
    return scopes


def local_subject(user):
    """The stable ``sub`` of tokens issued for ``user``: their LocalAccount's UUID (never the username)."""
    try:
        account = user.local_account
    except LocalAccount.DoesNotExist:  # a user created without the post_save signal (bulk_create, raw SQL)
        account, _ = LocalAccount.objects.get_or_create(user=user)
    return str(account.subject)


def linkable_problem(user):
    """Why ``user`` may not have linked identities (staff, superuser, service account), or None."""
    if user.is_staff or user.is_superuser:
        return "staff and superusers are never linked to external identities"
    if hasattr(user, "service_application"):
        return "service accounts are never linked to external identities"
    return None


def lookup_descriptions(trusted_issuer):
    """Plain descriptions of the attributes implicit linking trusts from ``trusted_issuer``, primary first."""
    described = []
    for attribute in trusted_issuer.link_lookups:
        claim = trusted_issuer.link_custom_claim if attribute == "custom" else LOOKUP_CLAIMS[attribute]
        extra = ", only with email_verified: true" if attribute == "email" else ""
        described.append(f"{attribute} (claim {claim}{extra})")
    return described


def _usable(value, attribute):
    """A claim value worth looking up: a non-empty printable string, no longer than the column."""
    return isinstance(value, str) and 0 < len(value) <= _MAX_LENGTH[attribute] and value.isprintable()


def lookup_values(trusted_issuer, claims):
    """The (attribute, value) pairs to look up, primary first; LinkRefused when the token has none of them.

    A claim of the wrong type, empty, too long or holding control characters counts as absent. An
    email is looked up only when ``email_verified`` is exactly ``true``; an unverified one is present
    (no refusal) but never matched.
    """
    values, present = [], False
    for attribute in trusted_issuer.link_lookups:
        claim = trusted_issuer.link_custom_claim if attribute == "custom" else LOOKUP_CLAIMS[attribute]
        value = claims.get(claim)
        if not _usable(value, attribute):
            continue
        present = True
        if attribute == "email" and claims.get("email_verified") is not True:
            continue
        values.append((attribute, value))
    if not present:
        raise LinkRefused("lookup_attributes_missing")
    return values


def _candidates(attribute, value):
    User = get_user_model()
    if attribute == "username":
        users = User.objects.filter(**{User.USERNAME_FIELD: value})
    elif attribute == "email":
        users = User.objects.filter(**{f"{User.get_email_field_name()}__iexact": value})
    else:
        users = User.objects.filter(local_account__lookup_attribute=value)
    return list(users.select_related("local_account", "service_application")[:2])


def implicit_match(trusted_issuer, claims):
    """Implicit linking: (user, attribute, detail) for the one local user the lookup attributes match.

    The primary attribute is looked up first, the secondary when the primary matches nobody. No
    user (None) when a value matches nobody, several users (ambiguous: never guessed), or a user
    who may not be linked. LinkRefused when the token has none of the attributes.
    """
    for attribute, value in lookup_values(trusted_issuer, claims):
        users = _candidates(attribute, value)
        if not users:
            continue
        if len(users) > 1:
            return None, attribute, f"{attribute} matches several local users: not linked"
        if linkable_problem(users[0]) is not None:
            return None, attribute, f"{attribute} matches a user who may not be linked: not linked"
        return users[0], attribute, f"{attribute} matches one local user"
    return None, None, "the lookup attributes match no local user: not linked"


def find_link(trusted_issuer, subject):
    """The LinkedIdentity of (issuer, external sub), its user and their LocalAccount loaded; None if none (one query)."""
    return (LinkedIdentity.objects.select_related("user__local_account", "user__service_application")
            .filter(trusted_issuer=trusted_issuer, subject=subject).first())


def check_user(user):
    """LinkRefused when a linked local user may not get tokens: disabled, or no longer linkable."""
    if not user.is_active:
        raise LinkRefused("local_user_disabled")
    if linkable_problem(user) is not None:
        raise LinkRefused("local_user_not_linkable")


def resolve(trusted_issuer, subject, claims, mode):
    """Whom an exchange of (issuer, ``subject``, verified ``claims``) is for under ``mode``; reads only.

    Returns a Resolution; raises LinkRefused. ``mode`` is the application's ``linked_accounts``.
    """
    if mode == Application.LinkedAccounts.DISABLED:
        return Resolution(None, None, "linked accounts are not used by this application")
    link, new_link, detail = find_link(trusted_issuer, subject), False, "no linked local account"
    if link is None and trusted_issuer.link_lookups:
        user, attribute, detail = implicit_match(trusted_issuer, claims)
        if user is not None:
            link = LinkedIdentity(trusted_issuer=trusted_issuer, subject=subject, user=user,
                                  origin=LinkedIdentity.Origin.IMPLICIT, matched_on=attribute)
            new_link = True
    if link is None:
        if mode == Application.LinkedAccounts.REQUIRE:
            raise LinkRefused("local_account_required")
        return Resolution(None, None, f"{detail}; issued for the external identity")
    check_user(link.user)
    name = link.user.get_username()
    if new_link:
        return Resolution(link.user, link, f"would be linked implicitly to local user {name} (matched on "
                                           f"{link.matched_on})", True)
    return Resolution(link.user, link, f"linked to local user {name}")


def narrow_scopes(scopes, user):
    """``scopes`` (requested and allowed for the application) narrowed to the local user's roles, in order."""
    if not scopes:
        return []
    held = scopes_for_user(user)
    return [scope for scope in scopes if scope in held]


def ensure_local_account(sender, instance, created, raw=False, **kwargs):
    """``post_save`` of the user model: every new user gets a LocalAccount (their stable local subject)."""
    if created and not raw:
        LocalAccount.objects.get_or_create(user=instance)


def connect_signals():
    post_save.connect(ensure_local_account, sender=get_user_model(), dispatch_uid="exchange-local-account")


def explain(trusted_issuer, claims, mode):
    """The linking step for explanations (*Test a token*, ``explain_token``): (ok, detail); writes nothing.

    ``mode`` is an application's ``linked_accounts``; the console's *Test a token* tab, which names
    no application, asks as an application that uses linked accounts would.
    """
    try:
        resolution = resolve(trusted_issuer, claims.get("sub"), claims, mode)
    except LinkRefused as exc:
        return False, f"{exc.cause}: {exc.description}"
    return True, resolution.detail
