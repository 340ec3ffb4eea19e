"""The console's pages, registered on the admin site (the project's ``ConsoleSite``).

One module per concern: ``base`` (the page renderer, the tabbed object page, History entries),
``issuers`` (Connections and the New Connection wizard), ``applications`` (with *Try it out*),
``scopes`` (the scope registry), ``records`` (tokens, signing keys, exchange events), ``users`` (local users,
linked identities, roles' scopes), ``dashboard`` (the home page's data), ``forms``.
"""

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from oauth2_provider.models import get_grant_model, get_id_token_model

from ..models import AccessToken, Application, ExchangeEvent, RefreshToken, Scope, SigningKey, TrustedTokenIssuer
from .applications import ApplicationAdmin
from .issuers import TrustedTokenIssuerAdmin
from .records import AccessTokenAdmin, ExchangeEventAdmin, RefreshTokenAdmin, SigningKeyAdmin
from .scopes import ScopeAdmin
from .users import LocalUserAdmin, RoleGroupAdmin

# django-oauth-toolkit registers its own admins; ours replace them, and authorization codes and ID tokens
# (not used by token exchange) get no stock pages in the console.
for model in (Application, AccessToken, RefreshToken, get_grant_model(), get_id_token_model(), get_user_model(), Group):
    if admin.site.is_registered(model):
        admin.site.unregister(model)

admin.site.register(TrustedTokenIssuer, TrustedTokenIssuerAdmin)
admin.site.register(Application, ApplicationAdmin)
admin.site.register(Scope, ScopeAdmin)
admin.site.register(AccessToken, AccessTokenAdmin)
admin.site.register(RefreshToken, RefreshTokenAdmin)
admin.site.register(SigningKey, SigningKeyAdmin)
admin.site.register(ExchangeEvent, ExchangeEventAdmin)
admin.site.register(get_user_model(), LocalUserAdmin)
admin.site.register(Group, RoleGroupAdmin)
