"""The oauthlib server used by django-oauth-toolkit, with the token-exchange grant registered.

Points both ``OAUTH2_SERVER_CLASS`` and ``OIDC_SERVER_CLASS`` here. The
server's keyword arguments are deliberately not forwarded to the new grant
(DOT's device-flow pre-token validator would run on it).
"""

from oauthlib import openid

from .grant import TokenExchangeGrant
from .models import TOKEN_EXCHANGE


def token_lifetime(request):
    """Access-token lifetime: the application's own, else the server default."""
    return request.client.token_lifetime


class Server(openid.Server):
    def __init__(self, request_validator, *args, **kwargs):
        super().__init__(request_validator, *args, **kwargs)
        # oauthlib's endpoints each keep a token handler; all issue with the application's lifetime.
        for handler in {id(h): h for h in (self.bearer, self.default_token_type)}.values():
            handler.expires_in = token_lifetime
        self.token_exchange_grant = TokenExchangeGrant(request_validator)
        self.grant_types[TOKEN_EXCHANGE] = self.token_exchange_grant
