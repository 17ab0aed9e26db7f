from django.apps import AppConfig


class AgentosConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "agentos"
