"""Start the project's scripts as real processes without paying for Python's imports each time.

The suite runs ``python -m worker``, ``send_approval``, ``start_workflow``, ``demo``... a few
hundred times, and each start spends one to three seconds of CPU importing temporalio,
openai, pydantic and fastapi before the script's first line: on two cores, that was most of
the suite's time. The launcher is one process per test process that imports those libraries
once and then forks a child per command. Each child is a real process (its own PID, exit
status and signals; the stdin/stdout/stderr, environment and working directory the test
gave it) that runs ``python -m <module>`` the way the interpreter does, ending with the
interpreter's own shutdown; only the libraries are already in memory. Nothing of the
project is preloaded: every project module is imported afresh in each child, from the
environment the test gave it, as in a new process.

``LaunchedProcess`` answers what tests ask of a ``subprocess.Popen`` (``pid``, ``poll``,
``wait``, ``send_signal``, ``terminate``, ``kill``, ``communicate``, ``returncode``).
The launcher starts the first time a test runs a script, and stops with the test process.
"""

import contextlib
import io
import json
import os
import runpy
import selectors
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import types
from pathlib import Path
from typing import IO, Any

# What the scripts import from outside the project (measured: worker, demo, inbox, the
# decision scripts, codec_server). None of these starts a thread on import, so forking after
# them is safe; the launcher checks that before it serves.
PRELOADED = (
    "temporalio.client",
    "temporalio.worker",
    "temporalio.testing",
    "temporalio.contrib.pydantic",
    "openai",
    "pydantic",
    "cryptography.hazmat.primitives.ciphers.aead",
    "fastapi",
    "starlette.applications",
    "uvicorn",
    "argon2",
    "jinja2",
)
_HEADER = struct.Struct("!Q")  # the length of a request, sent with the child's three fds
_STATUS = struct.Struct("!q")  # a PID, then an exit status (negative: killed by that signal)


# ---- in the test process ----------------------------------------------------------------


class Launcher:
    """The test process's end: a listening Unix socket and the launcher serving it."""

    def __init__(self) -> None:
        self._dir = tempfile.mkdtemp(prefix="hitl-launcher-")
        self.path = os.path.join(self._dir, "socket")
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(self.path)
        self._listener.listen(64)  # connections wait here until the launcher has imported
        root = Path(__file__).resolve().parent.parent
        # Its stdin is a pipe only this process holds: when the tests end, however they
        # end, the launcher reads end-of-file and exits.
        self.process = subprocess.Popen(
            [sys.executable, "-c", "import tests.launcher as l; l.serve_and_become_a_child()"],
            cwd=root,
            stdin=subprocess.PIPE,
            pass_fds=(self._listener.fileno(),),
            env={**os.environ, "HITL_LAUNCHER_FD": str(self._listener.fileno())},
        )

    def launch(
        self,
        argv: list[str],
        env: dict[str, str],
        cwd: str | os.PathLike[str],
        stdio: tuple[int, int, int],
    ) -> "LaunchedProcess":
        """Fork a child running ``python -m argv[0] argv[1:]`` with ``stdio`` as fds 0-2."""
        request = json.dumps({"argv": argv, "env": env, "cwd": os.fspath(cwd)}).encode()
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.connect(self.path)
        socket.send_fds(connection, [_HEADER.pack(len(request))], list(stdio))
        connection.sendall(request)
        (pid,) = _STATUS.unpack(_receive(connection, _STATUS.size))
        return LaunchedProcess(pid, connection)

    def stop(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._listener.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)
            os.rmdir(self._dir)


class LaunchedProcess:
    """A child of the launcher, used like a ``subprocess.Popen``: the launcher reaps it and
    sends its exit status on the connection that asked for it."""

    def __init__(self, pid: int, connection: socket.socket) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self.stdout: IO[str] | None = None
        self.stderr: IO[str] | None = None
        self._connection = connection
        self._lock = threading.Lock()

    def poll(self) -> int | None:
        return self._status(block=False, timeout=None)

    def wait(self, timeout: float | None = None) -> int:
        status = self._status(block=True, timeout=timeout)
        if status is None:
            raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0)
        return status

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        """Read the pipes the caller attached as ``stdout``/``stderr`` to their end."""
        results: dict[str, str] = {}
        readers = [
            threading.Thread(target=lambda n=name, s=stream: results.__setitem__(n, s.read()))
            for name, stream in (("stdout", self.stdout), ("stderr", self.stderr))
            if stream is not None
        ]
        for reader in readers:
            reader.start()
        self.wait(timeout)
        for reader in readers:
            reader.join(timeout)
        for stream in (self.stdout, self.stderr):
            if stream is not None:
                stream.close()
        return results.get("stdout", ""), results.get("stderr", "")

    def _status(self, block: bool, timeout: float | None) -> int | None:
        with self._lock:
            if self.returncode is not None:
                return self.returncode
            self._connection.settimeout(timeout if block else 0.0)
            try:
                data = _receive(self._connection, _STATUS.size)
            except (BlockingIOError, TimeoutError):
                return None
            finally:
                self._connection.settimeout(None)
            (self.returncode,) = _STATUS.unpack(data)
            self._connection.close()
            return self.returncode


Stdio = int | IO[Any] | None  # as for Popen: PIPE, DEVNULL, STDOUT (stderr only), a file


def popen(
    argv: list[str],
    env: dict[str, str],
    cwd: str | os.PathLike[str],
    stdin: Stdio = subprocess.DEVNULL,
    stdout: Stdio = None,
    stderr: Stdio = None,
) -> LaunchedProcess:
    """``python -m argv[0] argv[1:]`` as ``subprocess.Popen(..., text=True)`` would start it;
    ``None`` means this process's own stream, as for Popen."""
    ours: list[int] = []  # fds opened here: closed once the child has its copies
    ends: dict[str, IO[str]] = {}

    def fd_for(name: str, spec: Stdio, default: int, reading: bool) -> int:
        if spec is None:
            return default
        if spec == subprocess.DEVNULL:
            fd = os.open(os.devnull, os.O_RDONLY if reading else os.O_WRONLY)
            ours.append(fd)
            return fd
        if spec == subprocess.PIPE:
            read_end, write_end = os.pipe()
            child_end, our_end = (read_end, write_end) if reading else (write_end, read_end)
            ours.append(child_end)
            ends[name] = open(our_end, "w" if reading else "r")  # noqa: SIM115
            return child_end
        if isinstance(spec, int):
            return spec
        spec.flush()
        return spec.fileno()

    child_stdin = fd_for("stdin", stdin, 0, reading=True)
    child_stdout = fd_for("stdout", stdout, 1, reading=False)
    child_stderr = (
        child_stdout if stderr == subprocess.STDOUT else fd_for("stderr", stderr, 2, False)
    )
    try:
        process = launcher().launch(argv, env, cwd, (child_stdin, child_stdout, child_stderr))
    finally:
        for fd in ours:
            os.close(fd)
    process.stdout, process.stderr = ends.get("stdout"), ends.get("stderr")
    return process


def run(
    argv: list[str], env: dict[str, str], cwd: str | os.PathLike[str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """``subprocess.run(..., capture_output=True, text=True, timeout=timeout)`` for a script."""
    process = popen(argv, env, cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise
    return subprocess.CompletedProcess(argv, process.wait(), stdout, stderr)


_launcher: Launcher | None = None
_launcher_lock = threading.Lock()


def launcher() -> Launcher:
    """This test process's launcher, started on first use."""
    global _launcher
    with _launcher_lock:
        if _launcher is None:
            _launcher = Launcher()
        return _launcher


def stop_launcher() -> None:
    global _launcher
    with _launcher_lock:
        if _launcher is not None:
            _launcher.stop()
            _launcher = None


def _receive(connection: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the launcher closed the connection")
        data += chunk
    return data


# ---- in the launcher process ------------------------------------------------------------


def serve_and_become_a_child() -> None:
    """The launcher: import the libraries, then fork a child per request; in the child,
    return from serving and run the requested module as ``python -m`` would."""
    for name in PRELOADED:
        __import__(name)
    assert threading.active_count() == 1 and len(os.listdir("/proc/self/task")) == 1, (
        "a preloaded library started a thread: forking is no longer safe"
    )
    request = _serve(socket.socket(fileno=int(os.environ.pop("HITL_LAUNCHER_FD"))))
    _become(*request)


def _serve(listener: socket.socket) -> tuple[list[str], dict[str, str], str, list[int]]:
    """Accept requests until stdin closes; return only in a forked child, with its request."""
    waiting: dict[int, socket.socket] = {}  # child PID -> the connection awaiting its status
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes the selector through the pipe
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "request")
    selector.register(wake_r, selectors.EVENT_READ, "child")
    selector.register(sys.stdin, selectors.EVENT_READ, "stop")
    while True:
        for key, _ in selector.select():
            if key.data == "stop":
                os._exit(0)
            if key.data == "child":
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_r, 4096)
                _report_exits(waiting)
                continue
            connection, _ = listener.accept()
            message, fds, _, _ = socket.recv_fds(connection, _HEADER.size, 3)
            request = json.loads(_receive(connection, _HEADER.unpack(message)[0]))
            pid = os.fork()
            if pid == 0:
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                selector.close()
                for fd in (wake_r, wake_w):
                    os.close(fd)
                for other in (listener, connection, *waiting.values()):
                    other.close()
                return request["argv"], request["env"], request["cwd"], fds
            for fd in fds:
                os.close(fd)
            with contextlib.suppress(OSError):
                connection.sendall(_STATUS.pack(pid))
            waiting[pid] = connection
        _report_exits(waiting)


def _report_exits(waiting: dict[int, socket.socket]) -> None:
    for pid in list(waiting):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            connection = waiting.pop(pid)
            with contextlib.suppress(OSError):
                connection.sendall(_STATUS.pack(os.waitstatus_to_exitcode(status)))
            connection.close()


def _become(argv: list[str], env: dict[str, str], cwd: str, fds: list[int]) -> None:
    """Turn this forked child into ``python -m argv[0] argv[1:]``."""
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    for fd in set(fds) - {0, 1, 2}:
        os.close(fd)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    _new_stdio(unbuffered=bool(env.get("PYTHONUNBUFFERED")))
    sys.path[0] = cwd  # as ``-m`` puts the working directory first
    sys.argv = list(argv)
    sys.modules["__main__"] = types.ModuleType("__main__")
    runpy._run_module_as_main(argv[0])  # type: ignore[attr-defined]  # what ``-m`` runs


def _new_stdio(unbuffered: bool) -> None:
    """Streams over the child's own fds 0-2, buffered as the interpreter buffers them."""

    def writer(fd: int, errors: str, line_buffering: bool) -> io.TextIOWrapper:
        raw = io.FileIO(fd, "w", closefd=False)
        buffer: Any = raw if unbuffered else io.BufferedWriter(raw)
        return io.TextIOWrapper(
            buffer,
            encoding=sys.stdout.encoding,
            errors=errors,
            line_buffering=line_buffering,
            write_through=unbuffered,
        )

    stdin = io.TextIOWrapper(
        io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding=sys.stdin.encoding
    )
    stdout = writer(1, sys.stdout.errors or "strict", line_buffering=os.isatty(1))
    stderr = writer(2, "backslashreplace", line_buffering=True)
    sys.stdin = sys.__stdin__ = stdin
    sys.stdout = sys.__stdout__ = stdout
    sys.stderr = sys.__stderr__ = stderr
