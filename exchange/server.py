"""The oauthlib server django-oauth-toolkit uses for the grants it answers (client_credentials,
refresh_token, authorization_code).

Points both ``OAUTH2_SERVER_CLASS`` and ``OIDC_SERVER_CLASS`` here. The token-exchange grant
does not go through oauthlib: ``views.TokenView`` hands it to grant.py.
"""

from oauthlib import openid


def token_lifetime(request):
    """Access-token lifetime: the application's own, else the server default; shorter for management tokens."""
    return request.client.lifetime_for(request.scopes)


class Server(openid.Server):
    def __init__(self, request_validator, *args, **kwargs):
        super().__init__(request_validator, *args, **kwargs)
        # oauthlib's endpoints each keep a token handler; all issue with the application's lifetime.
        for handler in {id(h): h for h in (self.bearer, self.default_token_type)}.values():
            handler.expires_in = token_lifetime
