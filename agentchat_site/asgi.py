"""ASGI entry point (stream requests share one thread: runtime/streaming/asgi.py)."""

import os

from django.core.asgi import get_asgi_application

from runtime.streaming.asgi import streams_share_one_thread

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "agentchat_site.settings")
application = streams_share_one_thread(get_asgi_application())
