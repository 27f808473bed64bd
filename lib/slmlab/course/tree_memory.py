"""Peak memory of the work a process starts, in MB (`TreeMemory`: its children, their
descendants and the kernels a zygote forks for it, sampled in a thread): `make course`'s
per-lab figure and `make bench`'s course peak.
"""

import threading
import time

import psutil

from slmlab.course import kernel_zygote


class TreeMemory:
    """Peak RSS (MB) summed over the children this process starts while measuring and their
    descendants (and itself, with `include_self`), sampled in a thread. Children that were
    already running are not the measured work's (a test runner's server, a pool's
    forkserver), nor is anything they fork meanwhile: both are left out. Kernels are the
    exception: a kernel zygote (`kernel_zygote`) forks them for the process that asks, so
    the kernels this process asks for while measuring count, and the zygote itself does
    not (its pages are the libraries its kernels share and count), nor the kernels it forks
    for another process (the other lab of the course's pool). Pages that forked processes
    share count once per process: an upper bound."""

    def __init__(self, every_s: float = 0.2, include_self: bool = True):
        self.every_s, self.include_self, self.peak_mb = every_s, include_self, 0.0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._earlier: set[int] = set()

    @staticmethod
    def _children_and_kernels(me: psutil.Process) -> list[psutil.Process]:
        zygotes = kernel_zygote.zygote_pids()
        return ([child for child in me.children() if child.pid not in zygotes]
                + kernel_zygote.forked_kernels())

    def _sample(self) -> None:
        me = psutil.Process()
        while not self._done.is_set():
            total = 0
            started = []
            for child in self._children_and_kernels(me):
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
        self._earlier = {p.pid for p in self._children_and_kernels(psutil.Process())}
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()
