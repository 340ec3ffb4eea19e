"""Scopes an application may receive: those configured on it, never DOT's "all scopes" default."""

from oauth2_provider.scopes import SettingsScopes


class ApplicationScopes(SettingsScopes):
    def get_available_scopes(self, application=None, request=None, *args, **kwargs):
        known = set(super().get_all_scopes())
        if application is None:
            return []
        return [scope for scope in application.allowed_scopes.split() if scope in known]

    def get_default_scopes(self, application=None, request=None, *args, **kwargs):
        return []
