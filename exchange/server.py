"""The oauthlib server django-oauth-toolkit uses for the grants it answers (client_credentials,
refresh_token, authorization_code).

Points both ``OAUTH2_SERVER_CLASS`` and ``OIDC_SERVER_CLASS`` here. The token-exchange grant
does not go through oauthlib: ``views.TokenView`` hands it to grant.py.
"""

from oauthlib import openid
from oauthlib.oauth2.rfc6749.grant_types.authorization_code import code_challenge_method_s256

#: PKCE methods accepted (RFC 7636 §4.2; RFC 9700 §2.1.1): S256 only. A challenge without a method
#: means ``plain`` (RFC 7636 §4.3) and is refused too, before the user is asked anything.
CODE_CHALLENGE_METHODS = {"S256": code_challenge_method_s256}


def token_lifetime(request):
    """Access-token lifetime: the application's own, else the server default; shorter for management tokens."""
    return request.client.lifetime_for(request.scopes)


class Server(openid.Server):
    def __init__(self, request_validator, *args, **kwargs):
        super().__init__(request_validator, *args, **kwargs)
        # oauthlib's endpoints each keep a token handler; all issue with the application's lifetime.
        for handler in {id(h): h for h in (self.bearer, self.default_token_type)}.values():
            handler.expires_in = token_lifetime
        # The code grant, plain and OpenID (whose checks run on a plain grant it wraps).
        for grant in (self.auth_grant, self.openid_connect_auth.proxy_target):
            grant._code_challenge_methods = CODE_CHALLENGE_METHODS
