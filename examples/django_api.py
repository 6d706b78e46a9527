"""A Django API (plain views and Django REST framework) that trusts a keyfob auth server.

One file, no database. Run it beside ``keyfob serve`` (which serves on
http://localhost:8000)::

    KEYFOB_ISSUER=http://localhost:8000 python examples/django_api.py runserver 5003

Then ``curl localhost:5003/notes -H "Authorization: Bearer $ACCESS_TOKEN"`` (a plain view)
or ``curl localhost:5003/api/notes ...`` (a DRF view).
"""

from __future__ import annotations

import os
import sys
from typing import ClassVar

from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY=os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret"),
        ALLOWED_HOSTS=["localhost", "127.0.0.1", "testserver"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=["django.contrib.contenttypes", "django.contrib.auth", "rest_framework"],
        MIDDLEWARE=["keyfob.integrations.django.KeyfobMiddleware"],
        DATABASES={},
        KEYFOB={
            "ISSUER": os.environ.get("KEYFOB_ISSUER", "http://localhost:8000"),
            "AUDIENCE": os.environ.get("KEYFOB_AUDIENCE") or None,
        },
        REST_FRAMEWORK={
            "DEFAULT_AUTHENTICATION_CLASSES": [
                "keyfob.integrations.django_rest_framework.KeyfobAuthentication"
            ],
            "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
            "UNAUTHENTICATED_USER": None,
        },
    )

import django

django.setup()

from django.http import HttpRequest, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402
from rest_framework.request import Request  # noqa: E402
from rest_framework.response import Response  # noqa: E402
from rest_framework.views import APIView  # noqa: E402

from keyfob.integrations.django import require_session  # noqa: E402
from keyfob.integrations.django_rest_framework import HasScopes  # noqa: E402

NOTES: dict[str, list[str]] = {}


def health(request: HttpRequest) -> JsonResponse:
    """Public; says who the caller is if a valid token came along (the middleware)."""
    principal = request.keyfob_principal  # type: ignore[attr-defined]
    return JsonResponse({"status": "ok", "user": principal.user_id if principal else None})


@require_session()
def notes(request: HttpRequest) -> JsonResponse:
    """A plain Django view behind a session."""
    user = request.keyfob_principal.user_id  # type: ignore[attr-defined]
    return JsonResponse({"user": user, "notes": NOTES.get(user, [])})


class NotesAPI(APIView):
    """A DRF view: reading needs a session, writing the notes:write scope."""

    permission_classes: ClassVar = [HasScopes]

    def get_permissions(self):  # type: ignore[no-untyped-def]
        self.required_scopes = ["notes:write"] if self.request.method == "POST" else []
        return super().get_permissions()

    def get(self, request: Request) -> Response:
        user = request.auth.user_id
        return Response({"user": user, "notes": NOTES.get(user, [])})

    def post(self, request: Request) -> Response:
        NOTES.setdefault(request.auth.user_id, []).append(str(request.data.get("text", ""))[:1000])
        return Response({"notes": NOTES[request.auth.user_id]}, status=201)


urlpatterns = [
    path("health", health),
    path("notes", notes),
    path("api/notes", NotesAPI.as_view()),
]

if __name__ == "__main__":
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
