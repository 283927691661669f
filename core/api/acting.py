"""Who a request acts for: the signed-in user whose records it reads and writes."""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser
from django.http import HttpRequest
from rest_framework.request import Request


def acting_user(request: Request | HttpRequest) -> AbstractBaseUser:
    """The signed-in user a request acts for: whose records it reads and writes (staff included).

    Every API view and page requires authentication, so an anonymous user never gets this far.
    """
    user = request.user
    if not isinstance(user, AbstractBaseUser):
        raise TypeError("acting_user needs an authenticated request")
    return user
