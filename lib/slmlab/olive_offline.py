"""`olive ARGS`, offline: `python -m slmlab.olive_offline ARGS` runs Olive's command line
without its telemetry logger (`olive_pipeline.run_olive` runs every Olive command so).

Olive 0.13 counts every telemetry event it logs (its heartbeat, the command's own) and, at the
end of each command, waits up to 2 s for its exporter to report them sent. Offline, with
the exporter switched off (`OTEL_SDK_DISABLED`, see `olive_pipeline.olive_variables`), no
report ever comes: every `olive` command sat idle ~2.4 s before it exited (py-spy: `main` ->
`Telemetry.shutdown` -> `wait_for_callbacks`), six times per lab 06 run. Olive's own path
for "no logger" (its logger could not be created) logs nothing and waits for nothing.
Importing this module, before Olive builds its telemetry singleton, takes that path.
"""

import runpy

from olive.telemetry.telemetry import Telemetry

Telemetry._create_logger = lambda self: None  # noqa: SLF001 - Olive has no switch for the wait

if __name__ == "__main__":
    runpy.run_module("olive", run_name="__main__", alter_sys=True)
