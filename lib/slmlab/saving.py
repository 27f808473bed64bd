"""Writing a run's files so that a failure never loses the previous ones.

Two rules, for every lab and script:
- A run owns its `output_dir`. A second run of the same lab there starts clean (an earlier
  run's checkpoints would otherwise be "resumed" by the new one, and its figures would
  outlive a failed re-run); a directory holding anything else is refused.
- A model, adapter or export is written to a temporary folder beside its target and renamed
  into place only once complete: when the disk fills up or the folder is not writable, the
  previous version stays intact and the learner gets one line saying so.
"""

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
