"""The engine service's calls on Qt's asynchronous HTTP, for Slicer's main thread (no Python thread).

Why: Slicer's main thread holds the GIL while its event loop idles (PythonQt's thread support is
off in Slicer 5.10), so a Python worker thread waits for a GIL it gets only when the main thread
next runs Python: ~120-150 ms per click (issue 19). Here nothing waits in Python: a request goes to
`QNetworkAccessManager`, the socket work is Qt's C++ on the main thread's event loop, and the
reply's `finished()` signal runs the next step of the call (`operations`) on the main thread.

`qt` is the Qt namespace to use: Slicer's PythonQt module `qt` (QtNetwork is wrapped:
`PYTHONQT_WRAP_QTNETWORK` in Slicer's `SuperBuild/External_CTK.cmake`; the signatures used here are
those of commontk/PythonQt's `generated_cpp_511/com_trolltech_qt_network`), or PySide6's classes
(`pyside_qt.namespace()`) in tests and benchmarks, where PythonQt is absent. Only what both offer
is used: `reply.finished.connect(...)`, `bytes` for `QByteArray` arguments, `QByteArray.data()`.

Timeouts: `probe` connects a `QTcpSocket` within the connect timeout (a server that is down or
unreachable says so in ~5 s); each request has its read timeout (a `QTimer`, then `abort()`);
`Running.cancel()` aborts the request in flight and lets the operation clean up (a propagation job
is cancelled on the server).
"""

from __future__ import annotations

import os

from .operations import Request
from .wire import API_HEADER, EngineUnavailable, answer_of, check_token, check_url, encode_body

CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 300.0
_LOOPBACK = ("127.0.0.1", "localhost", "::1")


def release_later(qt, qobject) -> None:
    """Delete `qobject` from the event loop, never inside one of its own signals.

    PythonQt and PySide6 delete a parentless QObject made from Python as soon as its last Python
    reference goes. Dropping that reference in a slot of the object's own signal (a timer's
    `timeout()`, a reply's `finished()` whose handler drops the network manager) deletes it while Qt
    is still emitting: a use after free (the test process died with a jump to address 0x31). Qt's rule
    is `deleteLater()`; the reference a zero-delay single shot keeps stops the binding from deleting
    the object before that."""
    qobject.deleteLater()
    qt.QTimer.singleShot(0, lambda kept=qobject: None)


class Cancelled(Exception):
    """The user cancelled the call (thrown into the operation, which may clean up on the server)."""


class QtRunner:
    """Carries out `operations` against one engine URL with Qt's asynchronous HTTP."""

    def __init__(self, qt, url: str, token: str | None, connect_timeout: float = CONNECT_TIMEOUT_S,
                 read_timeout: float = READ_TIMEOUT_S):
        parsed = check_url(url)
        self.qt = qt
        self.url = str(url).strip().rstrip("/")
        self._host = parsed.hostname
        self._port = parsed.port or (443 if parsed.scheme == "https" else 80)
        self._authorization = f"Bearer {check_token(token)}".encode("ascii")
        self.connect_timeout = float(connect_timeout)
        self.read_timeout = float(read_timeout)
        self.manager = qt.QNetworkAccessManager()
        if parsed.hostname in _LOOPBACK:  # a local engine is never reached through a configured proxy
            self.manager.setProxy(qt.QNetworkProxy(qt.QNetworkProxy.NoProxy))
        if parsed.scheme == "https":
            _trust_ssl_cert_file(qt)
        self._running: set = set()

    def release(self) -> None:
        """Hand the network manager, with any reply still open, to Qt for deletion from the event loop
        (the runner may be dropped inside one of its replies' signals); the runner is done."""
        release_later(self.qt, self.manager)

    # --- reaching the server -------------------------------------------------------------------
    def probe(self, on_reachable, on_error) -> None:
        """Connect a TCP socket to the server within the connect timeout; `on_reachable()` or
        `on_error(EngineUnavailable)` later, on this thread."""
        qt = self.qt
        socket = qt.QTcpSocket()
        timer = qt.QTimer()
        timer.setSingleShot(True)
        state = {"done": False}

        def finish(error=None):
            if state["done"]:
                return
            state["done"] = True
            timer.stop()
            socket.abort()
            socket.deleteLater()
            timer.deleteLater()
            if error is None:
                on_reachable()
            else:
                on_error(error)

        def changed(new_state):
            if new_state == qt.QAbstractSocket.ConnectedState:
                finish()
            elif new_state == qt.QAbstractSocket.UnconnectedState:
                finish(EngineUnavailable(f"engine at {self.url} is unreachable ({socket.errorString()}); "
                                         f"is the server running?"))

        socket.stateChanged.connect(changed)
        timer.timeout.connect(lambda: finish(EngineUnavailable(
            f"engine at {self.url}: no connection within {self.connect_timeout:g} s; is the server running "
            f"and reachable?")))
        timer.start(int(self.connect_timeout * 1000))
        socket.connectToHost(self._host, self._port)

    # --- calls ---------------------------------------------------------------------------------
    def start(self, operation, on_done, on_error) -> Running:
        """Carry out `operation`; `on_done(result)` or `on_error(exception)` later, on this thread."""
        running = Running(self, operation, on_done, on_error)
        self._running.add(running)
        running.step(None, None)
        return running

    def cancel_all(self) -> None:
        for running in list(self._running):
            running.cancel()

    def _send(self, request: Request, on_finished):
        qt = self.qt
        network_request = qt.QNetworkRequest(qt.QUrl(self.url + request.path))
        network_request.setRawHeader(b"Authorization", self._authorization)
        payload = encode_body(request.body)
        if payload is not None:
            kind = b"application/octet-stream" if isinstance(request.body, (bytes, bytearray, memoryview)) \
                else b"application/json"
            network_request.setRawHeader(b"Content-Type", kind)
        method = request.method.upper()
        if method == "GET":
            reply = self.manager.get(network_request)
        elif method == "POST":
            reply = self.manager.post(network_request, payload or b"")
        elif method == "PUT":
            reply = self.manager.put(network_request, payload or b"")
        elif method == "DELETE":
            reply = self.manager.deleteResource(network_request)
        else:
            reply = self.manager.sendCustomRequest(network_request, method.encode("ascii"), payload or b"")
        reply.finished.connect(lambda: on_finished(reply))
        return reply

    def _read(self, reply, request: Request, timed_out: bool, cancelled: bool):
        """The decoded answer of a finished reply, or the SegMoTE error it stands for."""
        qt = self.qt
        status = reply.attribute(qt.QNetworkRequest.HttpStatusCodeAttribute)
        wait = self.read_timeout if request.read_timeout is None else request.read_timeout
        if cancelled:
            raise Cancelled(request.what)
        if timed_out:
            raise EngineUnavailable(f"engine at {self.url} sent no answer within {wait:g} s during {request.what}; "
                                    f"is it overloaded, or no SegMoTE engine?")
        if status is None or status == 0:  # no HTTP answer at all
            raise EngineUnavailable(f"engine at {self.url} is unreachable during {request.what} "
                                    f"({reply.errorString()}); is the server still running?")
        # header names as str: PySide6 takes a string view, PythonQt turns a str into a QByteArray
        header = reply.rawHeader(API_HEADER).data() if reply.hasRawHeader(API_HEADER) else None
        content_type = reply.rawHeader("Content-Type").data().decode("latin-1") \
            if reply.hasRawHeader("Content-Type") else None
        reason = _text(reply.attribute(qt.QNetworkRequest.HttpReasonPhraseAttribute))
        data = reply.readAll().data()
        return answer_of(int(status), reason, header.decode("latin-1") if header else None, content_type,
                         data, self.url, request.what)[1]


class Running:
    """One operation being carried out; `cancel()` stops it (its `on_error` gets `Cancelled`)."""

    def __init__(self, runner: QtRunner, operation, on_done, on_error):
        self.runner, self.operation = runner, operation
        self.on_done, self.on_error = on_done, on_error
        self.finished = False
        self._reply = None
        self._timer = None
        self._timed_out = False
        self._cancel_asked = False
        self._cancel_told = False  # the operation has heard Cancelled; its clean-up requests go out
        self._request: Request | None = None

    def cancel(self) -> None:
        if self.finished or self._cancel_asked:
            return
        self._cancel_asked = True
        if self._reply is not None:
            self._reply.abort()  # finished() follows, and the operation hears Cancelled

    def step(self, answer, error) -> None:
        """Hand the operation its answer (or error); send what it asks next, or end."""
        while True:
            try:
                request = self.operation.send(answer) if error is None else self.operation.throw(error)
            except StopIteration as stop:
                self._end(self.on_done, stop.value)
                return
            except BaseException as failure:  # noqa: BLE001  the operation's outcome, handed to on_error
                self._end(self.on_error, failure)
                return
            try:
                self._request = request
                self._reply = self.runner._send(request, self._finished)  # noqa: SLF001
                self._arm_timer(request)
                return
            except Exception as refused:  # noqa: BLE001  a body refused before sending (NaN...), or a Qt
                # binding refusing an argument: back to the operation, which ends with it; never up
                # through Qt's signal handler, where the call would never end and hold its engine
                answer, error = None, refused

    def _arm_timer(self, request: Request) -> None:
        qt = self.runner.qt
        wait = self.runner.read_timeout if request.read_timeout is None else request.read_timeout
        self._timed_out = False
        self._timer = qt.QTimer()
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._time_out)
        self._timer.start(int(wait * 1000))

    def _time_out(self) -> None:
        self._timed_out = True
        if self._reply is not None:
            self._reply.abort()

    def _finished(self, reply) -> None:
        if reply is not self._reply:
            return
        self._reply = None
        if self._timer is not None:
            self._timer.stop()
            release_later(self.runner.qt, self._timer)
            self._timer = None
        answer, error = None, None
        tell_cancel = self._cancel_asked and not self._cancel_told
        try:
            answer = self.runner._read(reply, self._request, self._timed_out, tell_cancel)  # noqa: SLF001
        except BaseException as failure:  # noqa: BLE001  handed to the operation
            error = failure
        finally:
            reply.deleteLater()
        self._cancel_told = self._cancel_told or tell_cancel
        self.step(answer, error)

    def _end(self, callback, value) -> None:
        self.finished = True
        self.runner._running.discard(self)  # noqa: SLF001
        callback(value)


def _text(value) -> str:
    """A QVariant's text: PythonQt hands a QByteArray back as a wrapper, PySide6 as bytes or str."""
    if value is None:
        return ""
    if hasattr(value, "data"):
        value = value.data()
    return value.decode("latin-1") if isinstance(value, bytes) else str(value)


def _trust_ssl_cert_file(qt) -> None:
    """Qt trusts the system's certificate authorities; add those in SSL_CERT_FILE (a private CA,
    which Python's clients honour too) to the application's default TLS settings. PythonQt wraps
    `QSslConfiguration.setDefaultConfiguration` but not `QNetworkRequest.setSslConfiguration`."""
    path = os.environ.get("SSL_CERT_FILE")
    if not path or not os.path.isfile(path):
        return
    certificates = list(qt.QSslCertificate.fromPath(path))
    if certificates:
        configuration = qt.QSslConfiguration.defaultConfiguration()
        configuration.setCaCertificates(list(configuration.caCertificates()) + certificates)
        qt.QSslConfiguration.setDefaultConfiguration(configuration)
