"""djangorestframework-simplejwt with rotation and blacklisting, in one file.

``ROTATE_REFRESH_TOKENS`` and ``BLACKLIST_AFTER_ROTATION`` are on (the ``token_blacklist``
app): every refresh checks the presented token against the blacklist, blacklists it
(an ``OutstandingToken`` and a ``BlacklistedToken`` row) and records the new one as
outstanding. SQLite in WAL mode with persistent connections; served by gunicorn, one
sync worker::

    python django_simplejwt.py setup   # migrate and create the benchmark users
    gunicorn -w 1 -b 127.0.0.1:8002 django_simplejwt:application

Routes: ``POST /api/token/`` ``{username, password}`` → ``{refresh, access}``;
``POST /api/token/refresh/`` ``{refresh}`` → ``{refresh, access}``; ``GET /api/me/``
with ``Authorization: Bearer <access>`` (verified without a database read:
``JWTStatelessUserAuthentication``, the same job as the other peers).

Environment: ``DJANGO_DB`` (database path), ``SQLITE_SYNCHRONOUS`` (``FULL``),
``BENCH_USERS`` (1000). Login cost is not measured, so passwords use Django's cheapest
hasher.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta

import django
from django.conf import settings

SYNCHRONOUS = os.environ.get("SQLITE_SYNCHRONOUS", "FULL")
PASSWORD = "bench-password-0123"

settings.configure(
    DEBUG=False,
    SECRET_KEY="django-secret-for-the-benchmark-only-0123456789",
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    USE_TZ=True,
    MIDDLEWARE=[],
    INSTALLED_APPS=[
        "django.contrib.contenttypes",
        "django.contrib.auth",
        "rest_framework",
        "rest_framework_simplejwt.token_blacklist",
    ],
    DATABASES={
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("DJANGO_DB", "django-simplejwt.db"),
            "CONN_MAX_AGE": None,
            "OPTIONS": {
                "init_command": f"PRAGMA journal_mode=WAL; PRAGMA synchronous={SYNCHRONOUS};"
            },
        }
    },
    DEFAULT_AUTO_FIELD="django.db.models.BigAutoField",
    PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
    REST_FRAMEWORK={
        "DEFAULT_AUTHENTICATION_CLASSES": [
            "rest_framework_simplejwt.authentication.JWTStatelessUserAuthentication"
        ],
        "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
        "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
        "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
        "UNAUTHENTICATED_USER": None,
    },
    SIMPLE_JWT={
        "ACCESS_TOKEN_LIFETIME": timedelta(minutes=15),
        "REFRESH_TOKEN_LIFETIME": timedelta(days=7),
        "ROTATE_REFRESH_TOKENS": True,
        "BLACKLIST_AFTER_ROTATION": True,
        "UPDATE_LAST_LOGIN": False,
    },
)
django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.urls import path  # noqa: E402
from rest_framework.permissions import IsAuthenticated  # noqa: E402
from rest_framework.response import Response  # noqa: E402
from rest_framework.views import APIView  # noqa: E402
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView  # noqa: E402


class Me(APIView):
    permission_classes = (IsAuthenticated,)

    def get(self, request):  # type: ignore[no-untyped-def]
        return Response({"user_id": request.user.id})


urlpatterns = [
    path("api/token/", TokenObtainPairView.as_view()),
    path("api/token/refresh/", TokenRefreshView.as_view()),
    path("api/me/", Me.as_view()),
]

application = get_wsgi_application()


def setup(users: int) -> None:
    """Create the tables and the benchmark users ``user0`` … ``user{users-1}``."""
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import User
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    hashed = make_password(PASSWORD)
    existing = set(User.objects.values_list("username", flat=True))
    User.objects.bulk_create(
        User(username=f"user{i}", password=hashed)
        for i in range(users)
        if f"user{i}" not in existing
    )


if __name__ == "__main__" and sys.argv[1:] == ["setup"]:
    setup(int(os.environ.get("BENCH_USERS", "1000")))
