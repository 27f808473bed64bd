"""Peak memory of one call in this process, in MB (`peak_rss_mb`): what each fine-tuning
method costs when it is built and trained (`peft_methods`)."""

import gc
import threading
import time
from collections.abc import Callable
from pathlib import Path

from slmlab.metrics import process_memory_mb


def peak_rss_mb(fn: Callable[[], object], every_s: float = 0.005) -> tuple[object, float]:
    """Run `fn`; return its result and the peak RSS above the RSS before it, in MB.

    On Linux the kernel keeps each process's peak RSS (VmHWM), which this resets first: the
    peak is exact, even for an allocation that lives a few milliseconds. Elsewhere a thread
    samples the RSS every `every_s` seconds (a loaded machine can delay it past a spike).
    """
    gc.collect()
    start = process_memory_mb()
    if _reset_peak_rss():
        result = fn()
        return result, _peak_rss_since_reset_mb() - start
    peak = start
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process_memory_mb())
            time.sleep(every_s)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        result = fn()
    finally:
        done.set()
        sampler.join()
    return result, peak - start


def _reset_peak_rss() -> bool:
    try:  # Linux >= 4.0: "5" resets this process's VmHWM to its current RSS
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss_since_reset_mb() -> float:
    status = Path("/proc/self/status").read_text()
    kibibytes = next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(kibibytes) * 1024 / 1e6
