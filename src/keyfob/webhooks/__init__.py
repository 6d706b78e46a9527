"""Security events delivered as signed webhooks (Standard Webhooks; docs/webhooks.md).

    messages.py   which events become which webhook types, and their JSON bodies
    sealing.py    endpoint signing secrets: made, shown once, sealed at rest
    endpoints.py  registering an endpoint: the URL rules (SSRF) and the sealed secret
    signing.py    the Standard Webhooks headers of one attempt
    retry.py      when the next attempt is due (exponential backoff with jitter)
    sender.py     one HTTP attempt, bounded in time, never following a redirect
    worker.py     the outbox worker that ``keyfob serve`` runs

The event log (:mod:`keyfob.events`) writes one pending delivery per subscribed endpoint
beside each event; only the worker makes HTTP calls, so a slow or dead receiver never
slows the request that caused the event. This package's ``__init__`` imports nothing:
the event log needs only :mod:`.messages`, and ``import keyfob`` must not pull in an
HTTP client.
"""
