"""Peak memory of the work a process starts, in MB (`TreeMemory`: its children and their
descendants, sampled in a thread): `make course`'s per-lab figure (a lab's kernel and what
it starts) and `make bench`'s course peak.
"""

import threading
import time

import psutil


class TreeMemory:
    """Peak RSS (MB) summed over the children this process starts while measuring and their
    descendants (and itself, with `include_self`), sampled in a thread. Children that were
    already running are not the measured work's (a test runner's server, a pool's
    forkserver), nor is anything they fork meanwhile: both are left out. Pages that forked
    processes share count once per process: an upper bound."""

    def __init__(self, every_s: float = 0.2, include_self: bool = True):
        self.every_s, self.include_self, self.peak_mb = every_s, include_self, 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._earlier: set[int] = set()

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._done.is_set():
            total = 0
            started = []
            for child in me.children():
                if child.pid not in self._earlier:
                    try:
                        started += [child, *child.children(recursive=True)]
                    except psutil.Error:  # it just ended
                        pass
            for process in [me] * self.include_self + started:
                try:
                    total += process.memory_info().rss
                except psutil.Error:  # a child that just ended
                    pass
            self.peak_mb = max(self.peak_mb, total / 1e6)
            time.sleep(self.every_s)

    def __enter__(self):
        self._earlier = {p.pid for p in psutil.Process().children()}
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()
