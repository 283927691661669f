from django.apps import AppConfig


class AgentchatSiteConfig(AppConfig):
    name = "agentchat_site"
    verbose_name = "Agent Chat site"
