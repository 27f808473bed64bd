"""A small content-addressed cache for artifacts that several labs build the same way.

Labs 04, 05 and 06 all need the LoRA adapter of lab 03's recipe (same model, data, rank,
steps, learning rate, seed). Training is deterministic here (fixed seed, fixed threads),
so the first lab that trains it stores it under a key made of everything that decides
the result, and later labs load it instead of training it again. A lab whose key is not
in the cache builds the artifact itself: the cache saves time, never changes a result.

Key: SHA-256 of the model's files, the training rows, the config (the caller adds what
else decides the result, e.g. a hash of its training code), the versions of the
libraries that train (torch, transformers, peft, trl), and how torch computes here: its
thread count and the CPU's vector instructions (AVX2, AVX512). Those change the order of
the float sums, so the trained weights: `make course` runs each lab with one thread and a
learner's kernel with every core's, and each must get what it would have trained itself.
An entry is published by one rename once complete, and its `COMPLETE` file holds the
digest of its content: an entry whose marker is missing or disagrees with its files (a
half-copied folder, a file changed or cut short later) is rebuilt, with one line saying so.
Entries live in `runs/cache/<key>/` (git-ignored); delete the folder to start clean.
"""

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator
from importlib.metadata import version
from pathlib import Path

from slmlab import RUNS_DIR, saving

CACHE_DIR = Path(os.environ.get("SLMLAB_CACHE_DIR", RUNS_DIR / "cache"))
LIBRARIES = ("torch", "transformers", "peft", "trl")


MARKER = "COMPLETE"


def files_digest(directory: str | os.PathLike, skip: tuple[str, ...] = ()) -> str:
    """SHA-256 over every file's relative path and bytes under `directory` (but `skip`)."""
    digest = hashlib.sha256()
    root = Path(directory)
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name not in skip):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def compute_setting() -> dict:
    """What decides torch's float sums on this CPU besides the code: threads and vector ISA."""
    import torch  # here: callers have imported it already, and this module stays light

    return {"torch_threads": torch.get_num_threads(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def cache_key(model_dir: str | os.PathLike, rows: Iterable[dict], config: dict) -> str:
    """The key of an artifact trained from `model_dir` on `rows` with `config` here."""
    content = {
        "model": files_digest(model_dir),
        "rows": hashlib.sha256(json.dumps(list(rows), sort_keys=True).encode()).hexdigest(),
        "config": config,
        "versions": {name: version(name) for name in LIBRARIES},
        "compute": compute_setting(),
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:24]


def entry_problem(entry: Path) -> str | None:
    """Why the cache entry folder `entry` must not be used, or None when it checks out."""
    marker = entry / MARKER
    if not marker.is_file():
        return f"its {MARKER} marker is missing"
    digest = marker.read_text().strip()
    if not digest:
        return f"its {MARKER} marker holds no digest"
    if digest != files_digest(entry, skip=(MARKER,)):
        return "its files differ from the digest stored when it was written"
    return None


def lookup(key: str, cache_dir: Path = CACHE_DIR, say: Callable[[str], None] = print
           ) -> Path | None:
    """The entry's folder if a complete, intact one exists, else None (an entry that does
    not check out is reported in one line; `store` then replaces it)."""
    entry = Path(cache_dir) / key
    if not entry.is_dir():
        return None
    if (problem := entry_problem(entry)) is not None:
        say(f"cache entry {key} is incomplete ({problem}): rebuilding it")
        return None
    return entry


def store(key: str, write: Callable[[Path], None], cache_dir: Path = CACHE_DIR) -> Path:
    """Let `write(folder)` fill a temporary folder, then publish it under `key`.

    The rename is atomic: a run killed while writing never leaves a half entry behind.
    """
    entry = Path(cache_dir) / key
    with saving.replace_atomically(entry) as staging:  # also replaces an incomplete entry
        write(staging)
        (staging / MARKER).write_text(files_digest(staging) + "\n")
    return entry


@contextlib.contextmanager
def one_builder(key: str, cache_dir: Path = CACHE_DIR) -> Iterator[None]:
    """Hold while looking up and building `key`: two labs run side by side (`make course`,
    `make test`) that need the same artifact train it once; the second waits, then loads it."""
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    with open(Path(cache_dir) / f".{key}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"another run is building cache entry {key}; waiting for it", flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield  # the lock goes with the file, also when the process is killed
