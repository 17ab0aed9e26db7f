from django.apps import AppConfig


class BrokersConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "brokers"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model
        from django.db.models.signals import post_save

        from brokers.signals import provision_paper_accounts

        # provisioning, not order flow: every new user can trade on the paper venues at once
        post_save.connect(provision_paper_accounts, sender=get_user_model(), dispatch_uid="provision_paper")
