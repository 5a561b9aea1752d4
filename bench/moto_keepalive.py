"""moto's server with HTTP keep-alive, the DynamoDB stand-in of the benchmark.

``moto_server`` answers every request with ``Connection: close``, so each
DynamoDB call pays a new TCP connection and a new server thread; real DynamoDB
keeps connections open. This runs the same moto application with an HTTP/1.1
request handler, so the service's pooled connections are reused as they would
be in production, and runs its requests one at a time: DynamoDB applies each
conditional write atomically, moto checks the condition and then stores the
item without a lock, so two threads' writes conditioned on the same version
could both succeed and one of them be lost.

    python -m bench.moto_keepalive --port 5000
"""

from __future__ import annotations

import argparse
import threading
from collections.abc import Iterable
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import make_server


class KeepAliveHandler(MotoRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_request(self, *args: object) -> None:
        """No per-request log line: it would cost the benchmark."""


class OneAtATime:
    """A WSGI application that runs ``app`` for one request at a time (moto holds the
    GIL through a request anyway, so little concurrency is lost)."""

    def __init__(self, app: WSGIApplication) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        with self.lock:
            return list(self.app(environ, start_response))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server(
        args.host, args.port, OneAtATime(app), threaded=True, request_handler=KeepAliveHandler
    )
    server.serve_forever()


if __name__ == "__main__":
    main()
