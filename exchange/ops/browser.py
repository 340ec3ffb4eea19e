"""Django's session, CSRF, authentication and messages middleware: for the pages people use, not the token endpoint.

The token endpoint serves machine clients: it reads no session, user or message, and it is
CSRF-exempt (its clients send no CSRF token; views.TokenView). Django's middleware for those
still did their work on each of its requests (a session store, a message store and its cookie
signer, a lazy user, the CSRF cookie read), ~5–8 % of an exchange's CPU
(``bench/profile_exchange.py``). These subclasses pass the token endpoint's requests straight on
and are Django's own everywhere else (the console, sign-in, the API). Being subclasses, Django's
checks that the admin needs them (admin.E408–E410) still find them.

What a token response carries is unchanged: these middleware add a header or a cookie only to a
request that used the session, a message or a CSRF token, which the token endpoint never does.
(One exception, which reached no client usefully: Django's session middleware also cleared a
malformed ``sessionid`` cookie a client sent along.) ``CsrfViewMiddleware.process_view`` still
runs, as Django calls view middleware itself, and passes the CSRF-exempt view.
"""

from django.contrib.auth import middleware as auth_middleware
from django.contrib.messages import middleware as messages_middleware
from django.contrib.sessions import middleware as sessions_middleware
from django.middleware import csrf

from .metrics import MetricsMiddleware

#: The token endpoint's paths (with and without the trailing slash, as urls.py routes both).
TOKEN_PATHS = frozenset(MetricsMiddleware.TOKEN_PATHS)


class _NotOnTokenEndpoint:
    def __call__(self, request):
        if request.path in TOKEN_PATHS:
            return self.get_response(request)
        return super().__call__(request)


class SessionMiddleware(_NotOnTokenEndpoint, sessions_middleware.SessionMiddleware):
    pass


class CsrfViewMiddleware(_NotOnTokenEndpoint, csrf.CsrfViewMiddleware):
    pass


class AuthenticationMiddleware(_NotOnTokenEndpoint, auth_middleware.AuthenticationMiddleware):
    pass


class MessageMiddleware(_NotOnTokenEndpoint, messages_middleware.MessageMiddleware):
    pass
