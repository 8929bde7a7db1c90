"""A real `segmote serve` process on a free port, for the service tests (SegMoTELib's launcher)."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

from SegMoTELib.service.launcher import LocalEngine

REPO = Path(__file__).resolve().parents[1]


class ServerProcess(LocalEngine):
    def __init__(self, *options: str):
        super().__init__(options=["--device", "cpu", "--adapter", "none", *options], pythonpath=str(REPO))
        self.start()


def serve_html_404(body: bytes) -> http.server.HTTPServer:
    """Another web server on a free loopback port, answering every GET with 404 and an HTML page;
    running in a daemon thread (the caller shuts it down)."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            self.send_response(404)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
