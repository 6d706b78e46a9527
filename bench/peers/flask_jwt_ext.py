"""flask-jwt-extended with a blocklist standing in for rotation, in one file.

flask-jwt-extended has no rotation of its own: the refresh route revokes the presented
refresh token's ``jti`` (an in-process set, checked by ``token_in_blocklist_loader`` on
every protected and refresh request) and issues a new refresh token with the new access
token. Served by gunicorn, one sync worker::

    gunicorn -w 1 -b 127.0.0.1:8003 flask_jwt_ext:app

Routes: ``POST /login`` ``{username, password}`` → ``{access_token, refresh_token}``;
``POST /refresh`` with ``Authorization: Bearer <refresh>`` → the same shape;
``GET /me`` with ``Authorization: Bearer <access>``. Login cost is not measured, so the
password is compared in constant time to one known value instead of a hash.
"""

from __future__ import annotations

import hmac
import os
from datetime import timedelta

from flask import Flask, jsonify, request
from flask_jwt_extended import (
    JWTManager,
    create_access_token,
    create_refresh_token,
    get_jwt,
    get_jwt_identity,
    jwt_required,
)

PASSWORD = "bench-password-0123"
USERS = frozenset(f"user{i}" for i in range(int(os.environ.get("BENCH_USERS", "1000"))))

app = Flask(__name__)
app.config["JWT_SECRET_KEY"] = "flask-secret-for-the-benchmark-only-0123456789"
app.config["JWT_ACCESS_TOKEN_EXPIRES"] = timedelta(minutes=15)
app.config["JWT_REFRESH_TOKEN_EXPIRES"] = timedelta(days=7)
jwt = JWTManager(app)

# The jtis of refresh tokens already used (rotated away).
revoked: set[str] = set()


@jwt.token_in_blocklist_loader
def is_revoked(jwt_header: dict, jwt_payload: dict) -> bool:
    return jwt_payload["jti"] in revoked


@app.post("/login")
def login():  # type: ignore[no-untyped-def]
    body = request.get_json(silent=True) or {}
    username = body.get("username")
    password = str(body.get("password", ""))
    if username not in USERS or not hmac.compare_digest(password, PASSWORD):
        return jsonify(msg="bad username or password"), 401
    return jsonify(
        access_token=create_access_token(identity=username),
        refresh_token=create_refresh_token(identity=username),
    )


@app.post("/refresh")
@jwt_required(refresh=True)
def refresh():  # type: ignore[no-untyped-def]
    identity = get_jwt_identity()
    revoked.add(get_jwt()["jti"])  # one worker, one request at a time: no race
    return jsonify(
        access_token=create_access_token(identity=identity),
        refresh_token=create_refresh_token(identity=identity),
    )


@app.get("/me")
@jwt_required()
def me():  # type: ignore[no-untyped-def]
    return jsonify(username=get_jwt_identity())
