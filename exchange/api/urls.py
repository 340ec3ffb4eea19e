"""URLs of the management API, mounted at /api/server/v1/ (WSO2's path for the same resources)."""

from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import SimpleRouter

from . import views



class Router(SimpleRouter):
    """Paths with or without a trailing slash (WSO2 writes them without, DRF clients often with)."""

    def __init__(self):
        super().__init__()
        self.trailing_slash = "/?"


router = Router()
router.register("trusted-token-issuers", views.TrustedTokenIssuerViewSet, basename="trusted-token-issuer")
router.register("applications", views.ApplicationViewSet, basename="application")
router.register("scopes", views.ScopeViewSet, basename="scope")
router.register("users", views.LocalUserViewSet, basename="user")
router.register("linked-identities", views.LinkedIdentityViewSet, basename="linked-identity")
router.register("roles", views.RoleViewSet, basename="role")

app_name = "api"
urlpatterns = [
    *router.urls,
    re_path(r"^token-validations/?$", views.TokenValidationView.as_view(), name="token-validations"),
    path("schema", SpectacularAPIView.as_view(), name="schema"),
    path("docs", SpectacularSwaggerSplitView.as_view(url_name="api:schema"), name="docs"),
    re_path(r"^.*$", views.not_found, name="not-found"),
]
