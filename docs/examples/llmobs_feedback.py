"""Client feedback for the llmobs gateway, in Python (docs/filters/correlation.md, "Client
feedback"). tests/test_feedback.py runs this file against the real Envoy.

The rated request's id is the `x-request-id` the gateway echoed on the model's answer; with the
OpenAI SDK, read it from the raw response:

    raw = client.chat.completions.with_raw_response.create(model=..., messages=...)
    completion = raw.parse()
    request_id = raw.headers["x-request-id"]
    send_feedback("http://gateway:10000", request_id, "down", locale="de-CH",
                  prompt_version="support-v7")
"""

from __future__ import annotations

import httpx

FEEDBACK_PATH = "/llmobs/v1/feedback"


def send_feedback(gateway: str, request_id: str, rating: str | None, *, kind: str = "feedback",
                  conversation_id: str | None = None, task_completed: bool | None = None,
                  ticket_url: str | None = None, locale: str | None = None,
                  prompt_version: str | None = None, timeout: float = 2.0) -> bool:
    """Sends one rating (`rating` "up" or "down") or, with `kind="client_error"`, a failure the
    client saw. Best effort: returns False instead of raising, so a lost rating never fails
    the user's action."""
    body: dict = {"request_id": request_id, "kind": kind}
    optional = {"rating": rating, "conversation_id": conversation_id, "task_completed": task_completed,
                "ticket_url": ticket_url, "locale": locale}
    body.update({k: v for k, v in optional.items() if v is not None})
    headers = {"x-llmobs-prompt-version": prompt_version} if prompt_version else {}
    try:
        response = httpx.post(gateway + FEEDBACK_PATH, json=body, headers=headers, timeout=timeout)
    except httpx.HTTPError:
        return False
    # 204: recorded. 400/405/413/415 carry {"error": {"type": "invalid_feedback", "reason": ...}}.
    return response.status_code == 204
