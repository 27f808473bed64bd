"""Writing a run's files so that a failure never loses the previous ones.

Two rules, for every lab and script:
- A run owns its `output_dir`. A second run of the same lab there starts clean (an earlier
  run's checkpoints would otherwise be "resumed" by the new one, and its figures would
  outlive a failed re-run); a directory holding anything else is refused.
- A model, adapter, export or JSON file the course reads back is written under a temporary
  name beside its target and renamed into place only once complete: a run killed while
  writing, a full disk or a read-only folder leave the previous version intact (a reader
  never sees half a file), and the learner gets one line saying so.
"""

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from slmlab import RUNS_DIR

RUN_MARKER = ".slmlab-run"  # written into output_dir by each lab run: "this lab owns it"


class SaveError(OSError):
    """A file or folder could not be written (one line: what, why, what is still intact)."""


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


@contextmanager
def replace_atomically(target: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty folder beside `target`; when the block ends without error it becomes
    `target` (replacing the previous one). On an OSError the previous `target` is untouched
    and SaveError says so in one line."""
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
        staging.chmod(0o777 & ~_umask())  # mkdtemp's 0700 would outlive the rename
    except OSError as error:
        raise SaveError(f"cannot write {target}: {error.strerror or error}; choose a "
                        "directory you can write to") from None
    try:
        yield staging
        previous = target.with_name(f".{target.name}.previous-{os.getpid()}")
        if target.exists():
            target.rename(previous)
        try:
            staging.rename(target)
        except OSError:
            if previous.exists():
                previous.rename(target)
            raise
        if previous.exists():
            _remove(previous)
    except OSError as error:
        kept = f"the previous {target.name} is intact" if target.exists() else "nothing was kept"
        raise SaveError(f"could not save {target}: {error.strerror or error}; {kept}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write `text` to `path` all at once: a temporary file beside it, flushed to disk, then
    renamed over it. Readers see the old file or the new one, never a part."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        with temporary.open("w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        kept = f"the previous {path.name} is intact" if path.exists() else "nothing was kept"
        raise SaveError(f"could not save {path}: {error.strerror or error}; {kept}") from None
    return path


def write_json(path: str | os.PathLike, data) -> Path:
    """`data` as indented JSON at `path`, written all at once (`write_text`)."""
    return write_text(path, json.dumps(data, indent=2) + "\n")


def read_json(path: str | os.PathLike, rerun: str,
              say: Callable[[str], None] = print) -> Any:
    """The JSON at `path`, or None (with one line naming it and what to rerun) when it is
    missing or not valid JSON, e.g. cut short by a process killed while writing it."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except OSError as error:
        say(f"{path} cannot be read ({error.strerror or error}): ignored; {rerun}")
    except ValueError:
        why = "it is empty" if not path.read_bytes().strip() else "not valid JSON"
        say(f"{path} is incomplete ({why}): ignored; {rerun}")
    return None


def start_run(lab: str, output_dir: str | os.PathLike) -> Path:
    """Make `output_dir` this lab's, empty but for executed notebooks (papermill writes its
    copy there while the run goes on). Raises SaveError (one line) when the folder is not
    writable, or holds another lab's run or (outside runs/) files no run of this lab wrote."""
    out = Path(output_dir)
    marker = out / RUN_MARKER
    try:
        out.mkdir(parents=True, exist_ok=True)
        leftovers = [p for p in out.iterdir() if p.suffix != ".ipynb" and p != marker]
        owner = marker.read_text().strip() if marker.exists() else None
        # runs/ is the course's own scratch space (git-ignored): a folder there without a
        # marker is an earlier run from before markers existed
        if owner is None and RUNS_DIR.resolve() in out.resolve().parents:
            owner = lab
        if leftovers and owner != lab:
            whose = f"a run of lab {owner}" if owner else "files no lab run wrote"
            raise SaveError(f"{lab}: output_dir {str(out)!r} holds {whose} "
                            f"({', '.join(sorted(p.name for p in leftovers)[:3])}); give this "
                            "lab a new or empty directory")
        for path in leftovers:
            _remove(path)
        marker.write_text(lab + "\n")
    except SaveError:
        raise
    except OSError as error:
        raise SaveError(f"{lab}: output_dir {str(out)!r} is not writable "
                        f"({error.strerror or error}); choose a directory you can write to") \
            from None
    if leftovers:
        print(f"output_dir {out}: removed the earlier run's {len(leftovers)} files and folders; "
              "this run starts clean")
    return out
