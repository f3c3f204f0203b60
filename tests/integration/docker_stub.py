"""A stand-in Docker Engine: the real HTTP API on a unix socket, answering just enough to fail.

An engine that answers but cannot give a container is the set-up this imitates: an offline
laptop, a proxy, a registry outage. The real docker-py and testcontainers talk to it through
``DOCKER_HOST=unix://...`` exactly as to dockerd: it answers ``/_ping`` and ``/version``, says
"No such image" for every image it was not told it has, and refuses pulls the way dockerd
does when the registry cannot be reached (an error status before any progress), or with
an error inside the progress stream (``pull_error_in_stream``). With ``start_error`` set,
a container is created (its labels kept, so cleanup can find it) but refuses to start.

Every request is recorded in ``requests`` as ``"METHOD /path"`` (API version prefix removed).
"""

from __future__ import annotations

import json
import re
import secrets
import socketserver
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

API_VERSION = "1.41"  # dockerd 20.10, Debian bookworm's docker.io
REGISTRY_UNREACHABLE = (
    'Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io '
    "on 127.0.0.53:53: no such host"
)
PULL_DENIED = "pull access denied, repository does not exist or may require 'docker login'"


@dataclass
class StubEngine:
    socket_path: Path
    images: set[str] = field(default_factory=set)
    pull_error_in_stream: bool = False
    start_error: str = ""
    requests: list[str] = field(default_factory=list)
    containers: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket_path}"

    def pulls(self) -> list[str]:
        return [r for r in self.requests if r.startswith("POST /images/create")]


@contextmanager
def stub_engine(**options: Any) -> Iterator[StubEngine]:
    """Serve a ``StubEngine`` on a fresh unix socket (a short path: the limit is 107 bytes)."""
    folder = Path(tempfile.mkdtemp(prefix="dk-"))
    engine = StubEngine(folder / "docker.sock", **options)
    server = _Server(str(engine.socket_path), _handler_for(engine))
    thread = threading.Thread(target=server.serve_forever, name="stub-docker-engine", daemon=True)
    thread.start()
    try:
        yield engine
    finally:
        server.shutdown()
        server.server_close()
        engine.socket_path.unlink(missing_ok=True)
        folder.rmdir()


class _Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def _handler_for(engine: StubEngine) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._route("GET")

        def do_HEAD(self) -> None:
            self._route("HEAD")

        def do_POST(self) -> None:
            self._route("POST")

        def do_DELETE(self) -> None:
            self._route("DELETE")

        def log_message(self, format: str, *args: Any) -> None:  # quiet, like a daemon's access log
            pass

        def _route(self, method: str) -> None:
            parts = urlsplit(self.path)
            path = re.sub(r"^/v\d+\.\d+", "", parts.path)
            query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"null") if length else None
            engine.requests.append(f"{method} {path}")
            if path == "/_ping":
                return self._send(200, "OK", content_type="text/plain")
            if path == "/version":
                return self._send(
                    200,
                    {
                        "ApiVersion": API_VERSION,
                        "MinAPIVersion": "1.12",
                        "Version": "20.10.24",
                        "Os": "linux",
                        "Arch": "amd64",
                    },
                )
            if image := _match(r"/images/(.+)/json", path):
                if image in engine.images:
                    return self._send(200, {"Id": f"sha256:{secrets.token_hex(32)}", "RepoTags": [image]})
                return self._send(404, {"message": f"No such image: {image}"})
            if path == "/images/create" and method == "POST":
                if engine.pull_error_in_stream:
                    progress = {"status": f"Pulling from {query.get('fromImage', '')}"}
                    failure = {"errorDetail": {"message": PULL_DENIED}, "error": PULL_DENIED}
                    return self._stream([progress, failure])
                return self._send(500, {"message": REGISTRY_UNREACHABLE})
            if path == "/containers/create" and method == "POST":
                image = (body or {}).get("Image", "")
                if image not in engine.images:
                    return self._send(404, {"message": f"No such image: {image}"})
                container_id = secrets.token_hex(32)
                engine.containers[container_id] = {
                    "Id": container_id,
                    "Name": f"/{query.get('name') or container_id[:12]}",
                    "Image": image,
                    "Config": {"Image": image, "Labels": (body or {}).get("Labels") or {}},
                    "State": {"Status": "created", "Running": False},
                }
                return self._send(201, {"Id": container_id, "Warnings": []})
            if path == "/containers/json":
                return self._send(
                    200,
                    [
                        _summary(c)
                        for c in engine.containers.values()
                        if _passes(c, json.loads(query.get("filters") or "{}"))
                    ],
                )
            if container_id := _match(r"/containers/([^/]+)/json", path):
                if container_id in engine.containers:
                    return self._send(200, engine.containers[container_id])
                return self._send(404, {"message": f"No such container: {container_id}"})
            if (container_id := _match(r"/containers/([^/]+)/start", path)) and method == "POST":
                return self._send(500, {"message": engine.start_error or "start refused by the stub"})
            if (container_id := _match(r"/containers/([^/]+)", path)) and method == "DELETE":
                engine.containers.pop(container_id, None)
                return self._send(204, None)
            return self._send(404, {"message": "page not found"})

        def _stream(self, events: list[dict[str, Any]]) -> None:
            """Progress as dockerd sends it: status 200 first, then one chunk per JSON event."""
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for event in events:
                data = json.dumps(event).encode() + b"\r\n"
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")

        def _send(self, status: int, payload: Any, content_type: str = "application/json") -> None:
            if payload is None:
                data = b""
            elif isinstance(payload, str):
                data = payload.encode()
            else:
                data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Api-Version", API_VERSION)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

    return Handler


def _match(pattern: str, path: str) -> str | None:
    found = re.fullmatch(pattern, path)
    return unquote(found.group(1)) if found else None


def _summary(container: dict[str, Any]) -> dict[str, Any]:
    return {
        "Id": container["Id"],
        "Names": [container["Name"]],
        "Image": container["Image"],
        "Labels": container["Config"]["Labels"],
        "State": container["State"]["Status"],
    }


def _passes(container: dict[str, Any], filters: dict[str, list[str]]) -> bool:
    labels = container["Config"]["Labels"]
    for wanted in filters.get("label", []):
        key, _, value = wanted.partition("=")
        if key not in labels or (value and labels[key] != value):
            return False
    return all(name in container["Name"] for name in filters.get("name", []))
