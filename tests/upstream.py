"""The real llmock server, plus a record of the request headers it received.

llmock's own journal (`GET /_llmock/requests`) keeps paths and bodies but not headers, and the
correlation tests must assert what reached the upstream (ids replaced, baggage stripped). This
wraps llmock's unchanged ASGI app with a small recorder exposed at `/_llmobs/seen`.

    python tests/upstream.py --port 8000
"""

from __future__ import annotations

import argparse
import collections
import json

import uvicorn
from llmock.main import create_app

SEEN_PATH = "/_llmobs/seen"


class HeaderRecorder:
    def __init__(self, app, capacity: int = 10_000):
        self.app = app
        self.seen: collections.deque = collections.deque(maxlen=capacity)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if scope["path"] == SEEN_PATH:
            if scope["method"] == "DELETE":
                self.seen.clear()
            body = json.dumps(list(self.seen)).encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": body})
            return
        if not scope["path"].startswith(("/_llmock", "/health")):
            self.seen.append({
                "method": scope["method"],
                "path": scope["path"],
                "query": scope.get("query_string", b"").decode("latin-1"),
                "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
            })
        return await self.app(scope, receive, send)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    uvicorn.run(HeaderRecorder(create_app()), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
