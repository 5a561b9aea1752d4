"""moto's server with HTTP keep-alive, the DynamoDB stand-in of the benchmark.

``moto_server`` answers every request with ``Connection: close``, so each
DynamoDB call pays a new TCP connection and a new server thread; real DynamoDB
keeps connections open. This runs the same moto application with an HTTP/1.1
request handler, so the service's pooled connections are reused as they would
be in production.

    python -m bench.moto_keepalive --port 5000
"""

from __future__ import annotations

import argparse

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server(args.host, args.port, app, threaded=True, request_handler=KeepAliveHandler)
    server.serve_forever()


if __name__ == "__main__":
    main()
