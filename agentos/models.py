"""Agent profiles: per-OAuth2-application settings of an agent (its optional notional cap)."""

from __future__ import annotations

from django.db import models
from oauth2_provider.settings import oauth2_settings


class AgentProfile(models.Model):
    """An agent is an OAuth2 application acting for its token's user. Without a profile (or for
    the built-in agent, which has no application) no per-agent cap applies."""

    application = models.OneToOneField(
        oauth2_settings.APPLICATION_MODEL, on_delete=models.CASCADE, related_name="agent_profile"
    )
    notional_cap = models.DecimalField(
        max_digits=18,
        decimal_places=8,
        null=True,
        blank=True,
        help_text="Largest notional one order of this agent may have; empty for no cap.",
    )
    is_active = models.BooleanField(default=True, help_text="An inactive agent may not place orders.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "agent_profiles"

    def __str__(self) -> str:
        return f"agent {self.application.name or self.application.client_id}"
