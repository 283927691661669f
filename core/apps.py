from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Core: configuration and conversations"
    default_auto_field = "django.db.models.BigAutoField"
