"""Print an OAuth2 bearer token for a user, for scripts, tests and the bench."""

from __future__ import annotations

import datetime as dt
import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from oauth2_provider.models import AccessToken, Application

APPLICATION_NAME = "TradeMaster command-line tokens"
SCOPES = {"read", "trade"}


def token_issue(*, user, scopes: list[str], days: int = 30, application_name: str = APPLICATION_NAME) -> str:
    unknown = set(scopes) - SCOPES
    if unknown or not scopes:
        raise ValueError(f"scopes must be among {sorted(SCOPES)}, got {scopes}")
    application, _ = Application.objects.get_or_create(
        name=application_name,
        defaults={
            "client_type": Application.CLIENT_CONFIDENTIAL,
            "authorization_grant_type": Application.GRANT_CLIENT_CREDENTIALS,
        },
    )
    token = AccessToken.objects.create(
        user=user,
        application=application,
        token=secrets.token_urlsafe(32),
        expires=timezone.now() + dt.timedelta(days=days),
        scope=" ".join(sorted(set(scopes))),
    )
    return token.token


class Command(BaseCommand):
    help = "Issue a bearer token: issue_token USERNAME --scopes read,trade"

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--scopes", default="read", help="comma-separated: read, trade")
        parser.add_argument("--days", type=int, default=30, help="validity in days")

    def handle(self, *args, username: str, scopes: str, days: int, **options) -> None:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r}")
        try:
            token = token_issue(
                user=user, scopes=[s.strip() for s in scopes.split(",") if s.strip()], days=days
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(token)
