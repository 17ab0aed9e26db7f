"""Token scopes for the API (and MCP): ``read`` for reads, ``trade`` for writes."""

from __future__ import annotations

from oauth2_provider.models import AccessToken
from rest_framework import exceptions, permissions


class HasScope(permissions.BasePermission):
    """Bearer tokens need ``read`` for reads and ``trade`` for writes; session users have both."""

    message = "This token lacks the scope this request needs."

    def has_permission(self, request, view) -> bool:
        token = request.auth
        if not isinstance(token, AccessToken):
            return True
        if not request.user.is_active:
            # django-oauth-toolkit accepts the tokens of a deactivated user: refuse them here
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        needed = "read" if request.method in permissions.SAFE_METHODS else "trade"
        needed = getattr(view, "required_scope", None) or needed
        if not token.allow_scopes([needed]):
            self.message = f"This token lacks the '{needed}' scope."
            return False
        return True
