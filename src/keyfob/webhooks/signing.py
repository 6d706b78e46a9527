"""The Standard Webhooks headers of one attempt, signed with its reference library.

``webhook-signature: v1,<base64 HMAC-SHA256(secret, "<id>.<timestamp>.<body>")>``. The
timestamp is the attempt's own, so every retry is signed afresh and a receiver's
five-minute tolerance holds for a message retried hours after its event.
"""

from __future__ import annotations

from datetime import UTC, datetime

from standardwebhooks import Webhook

__all__ = ["signed_headers"]


def signed_headers(secret: bytes, message_id: str, timestamp: int, payload: str) -> dict[str, str]:
    signature = Webhook(secret).sign(message_id, datetime.fromtimestamp(timestamp, UTC), payload)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
        "content-type": "application/json",
    }
