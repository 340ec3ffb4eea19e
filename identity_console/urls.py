from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path, re_path
from django.views.generic import RedirectView

from exchange import signin, views
from exchange.ops import metrics

# A database outage raised outside a view (e.g. saving the session) is a 503 too (exchange/ops/outage.py).
handler500 = "exchange.ops.outage.server_error"

oauth2_patterns = (
    [
        path("token", views.TokenView.as_view(), name="token"),
        path("token/", views.TokenView.as_view()),
        path("introspect", views.IntrospectView.as_view(), name="introspect"),
        path("introspect/", views.IntrospectView.as_view()),
        path("revoke", views.RevokeView.as_view(), name="revoke"),
        path("revoke/", views.RevokeView.as_view()),
        path("jwks", views.JWKSView.as_view(), name="jwks"),
        path("userinfo", signin.UserInfoView.as_view(), name="userinfo"),
    ],
    "oauth2",
)

# Sign-in for the registered applications (exchange/signin.py): pages for people, beside the endpoints above.
signin_patterns = (
    [
        path("authorize", signin.AuthorizationView.as_view(), name="authorize"),
        path("signin", signin.SignInView.as_view(), name="login"),
        path("signout", signin.SignOutView.as_view(), name="logout"),
    ],
    "signin",
)

urlpatterns = [
    path("oauth2/", include(oauth2_patterns)),
    path("oauth2/", include(signin_patterns)),
    # Server metadata where clients look for it from the issuer (views.metadata_paths: the issuer's path
    # after or before the well-known segment, or none); the view answers 404 for any other path.
    re_path(r"^\.well-known/(?P<document>openid-configuration|oauth-authorization-server)(?P<issuer_path>/.*)?$",
            views.DiscoveryView.as_view(), name="server-metadata"),
    path("livez", views.livez, name="livez"),
    path("metrics", metrics.metrics_view, name="metrics"),  # /healthz, /readyz: exchange.ops.health middleware
    path("console/", admin.site.urls),
    path("api/server/v1/", include("exchange.api.urls")),
    re_path(r"^(?P<issuer_path>.+)/\.well-known/(?P<document>openid-configuration|oauth-authorization-server)$",
            views.DiscoveryView.as_view(), name="server-metadata-appended"),
    path("", RedirectView.as_view(url="/console/", permanent=False)),
    # Browsers ask for /favicon.ico on every page without an icon link (the API's, Swagger's): no 404s.
    path("favicon.ico", RedirectView.as_view(url=static("console/favicon.ico"), permanent=True)),
]
