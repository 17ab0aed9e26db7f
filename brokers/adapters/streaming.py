"""The background thread a streaming adapter listens in (Alpaca, Binance, Schwab, IB).

Each adapter's own loop (connect, read, reconnect with backoff) runs as ``target`` and ends when
``stopping`` is set; this class only owns the thread's lifecycle, so that ``stream_start`` is
idempotent and ``stream_stop`` waits a bounded time everywhere.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class StreamThread:
    def __init__(self, name: str, target: Callable[[], None]) -> None:
        self.name = name
        self.stopping = threading.Event()
        self._target = target
        self._thread: threading.Thread | None = None

    def ensure_started(self) -> None:
        """Start the listener unless it is running (call it under the adapter's lock)."""
        if self.is_alive():
            return
        self.stopping.clear()
        self._thread = threading.Thread(target=self._target, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5) -> None:
        """Ask the listener to end and wait for it at most ``timeout`` seconds."""
        self.stopping.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def join(self, timeout: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def is_current(self) -> bool:
        """True inside the listener itself."""
        return self._thread is not None and threading.current_thread() is self._thread
