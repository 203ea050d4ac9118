"""An upstream that replays provider fixtures byte for byte, for end-to-end tests through Envoy.

    python tests/replay_upstream.py --port 8001 [--chunk-size 7] [--chunk-delay-ms 0]

A request is answered from tests/fixtures/providers/<case>/: the `x-fixture: <case>` header picks
a case explicitly; otherwise the case whose meta.json method and path match (query ignored; when
several match, an identical query breaks the tie; still ambiguous -> 409, unknown -> 404). The
reply carries the fixture's status, response_headers and response file. Streaming cases
(expected.stream) go out with transfer-encoding: chunked in --chunk-size byte chunks, each flushed,
so Envoy sees many small body callbacks split at odd offsets (inside UTF-8 characters and CRLFs).

GET /health -> 200. GET /_replay/requests -> JSON list of requests seen (method, path, headers,
body length and sha256; credential headers and `key=` query values redacted).
DELETE /_replay/requests clears it. Standard library only; binds 127.0.0.1.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "providers"
SECRET_HEADERS = {"authorization", "proxy-authorization", "x-api-key", "api-key", "x-goog-api-key", "cookie",
                  "x-amz-security-token"}
SECRET_QUERY = re.compile(r"((?:^|[?&])(?:key|api[-_]?key|sig|x-amz-signature)=)[^&]*", re.I)


def load_cases(root: Path) -> dict[str, dict]:
    cases = {}
    for meta_file in sorted(root.glob("*/meta.json")):
        meta = json.loads(meta_file.read_text("utf-8"))
        meta["body"] = (meta_file.parent / meta["response_file"]).read_bytes()
        cases[meta_file.parent.name] = meta
    return cases


def pick(cases: dict[str, dict], method: str, target: str, wanted: str | None) -> tuple[int, str | list[str]]:
    """Returns (200, case) or (404|409, candidate list)."""
    if wanted:
        return (200, wanted) if wanted in cases else (404, [])
    path, _, query = target.partition("?")
    hits = [n for n, m in cases.items()
            if m["method"] == method and unquote(m["path"].partition("?")[0]) == unquote(path)]
    if len(hits) > 1:
        hits = [n for n in hits if cases[n]["path"].partition("?")[2] == query] or hits
    return (200, hits[0]) if len(hits) == 1 else ((409 if hits else 404), hits)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "llmobs-replay/1"
    cases: dict[str, dict] = {}
    seen: list[dict] = []
    lock = threading.Lock()
    chunk_size = 7
    chunk_delay = 0.0

    def read_body(self) -> bytes:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            parts = []
            while (size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)) > 0:
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                pass
            return b"".join(parts)
        return self.rfile.read(int(self.headers.get("content-length") or 0))

    def reply_json(self, status: int, obj) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_one(self) -> None:
        body = self.read_body()
        path = self.path.partition("?")[0]
        if path == "/health":
            return self.reply_json(200, {"status": "ok", "cases": len(self.cases)})
        if path == "/_replay/requests":
            with self.lock:
                if self.command == "DELETE":
                    self.seen.clear()
                return self.reply_json(200, list(self.seen))
        status, found = pick(self.cases, self.command, self.path, self.headers.get("x-fixture"))
        with self.lock:
            self.seen.append({
                "method": self.command,
                "path": SECRET_QUERY.sub(r"\1<redacted>", self.path),
                "headers": [[k.lower(), "<redacted>" if k.lower() in SECRET_HEADERS else v] for k, v in self.headers.items()],
                "body_length": len(body),
                "body_sha256": hashlib.sha256(body).hexdigest(),
                "fixture": found if status == 200 else None,
            })
        if status != 200:
            return self.reply_json(status, {"error": "no unique fixture; send x-fixture", "candidates": found})
        meta = self.cases[found]
        self.send_response(meta["status"])
        for k, v in meta["response_headers"].items():
            if k.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(k, v)
        self.send_header("x-replay-fixture", found)
        data = meta["body"]
        if not meta["expected"]["stream"]:
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for i in range(0, len(data), self.chunk_size):
            piece = data[i:i + self.chunk_size]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            self.wfile.flush()
            if self.chunk_delay:
                time.sleep(self.chunk_delay)
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    do_GET = do_POST = do_PUT = do_DELETE = handle_one

    def log_request(self, code="-", size="-") -> None:  # method, path without query, status: nothing sensitive
        sys.stderr.write(f"replay {self.command} {self.path.partition('?')[0]} {code}\n")

    def log_message(self, format, *args) -> None:
        sys.stderr.write("replay " + (format % args).split("?")[0] + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--chunk-size", type=int, default=7)
    parser.add_argument("--chunk-delay-ms", type=float, default=0.0)
    parser.add_argument("--fixtures", type=Path, default=FIXTURES)
    args = parser.parse_args()
    Handler.cases = load_cases(args.fixtures)
    Handler.chunk_size = max(1, args.chunk_size)
    Handler.chunk_delay = args.chunk_delay_ms / 1000.0
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    sys.stderr.write(f"replay: {len(Handler.cases)} fixtures on 127.0.0.1:{args.port}\n")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
