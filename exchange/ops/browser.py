"""Django's authentication and messages middleware: for the pages people use, not the token endpoint.

The token endpoint serves machine clients: it reads no user and no message. Django's middleware
for those still did their work on each of its requests (a lazy user; a message store with a
cookie signer), ~5 % of an exchange's function calls (``bench/profile_exchange.py``). These
subclasses pass the token endpoint's requests straight on and are Django's own everywhere else
(the console, sign-in, the API). Being subclasses, the admin's checks that they are installed
(admin.E408, E409) still find them. What a token response carries is unchanged: the messages
middleware adds a cookie only to a request that used a message, which the token endpoint never does.

The session and CSRF middleware stay Django's own, by name: Django's deployment checks
(``check --deploy``: security.W003, W010–W013) look for them by their exact paths.
"""

from django.contrib.auth import middleware as auth_middleware
from django.contrib.messages import middleware as messages_middleware

from .metrics import MetricsMiddleware

#: The token endpoint's paths (with and without the trailing slash, as urls.py routes both).
TOKEN_PATHS = frozenset(MetricsMiddleware.TOKEN_PATHS)


class _NotOnTokenEndpoint:
    def __call__(self, request):
        if request.path in TOKEN_PATHS:
            return self.get_response(request)
        return super().__call__(request)


class AuthenticationMiddleware(_NotOnTokenEndpoint, auth_middleware.AuthenticationMiddleware):
    pass


class MessageMiddleware(_NotOnTokenEndpoint, messages_middleware.MessageMiddleware):
    pass
