"""Repository-wide pytest setup, loaded for every test path (tests/, solutions/, labs/).

nbval reads a kernel's IOPub channel only after the cell's execute reply. ZeroMQ's PUB/SUB
sockets queue at most 1,000 messages on each side (the default high-water marks) and
*drop* the rest silently, so a cell that sends more than ~2,000 outputs — a progress bar on
a slow CPU sends a few per second — loses its last messages, among them the kernel's
"idle" status, and nbval fails with "Timeout of 5 seconds exceeded waiting for output".
An unlimited receive queue on the test's kernel client keeps every message, at any CPU
speed (tests/notebooks/iopub_flood.ipynb reproduces the flood; tests/test_iopub_flood.py
shows it fails without this).
"""

import zmq
from jupyter_client.client import KernelClient

_start_channels = KernelClient.start_channels


def _start_channels_keeping_every_message(self, *args, **kwargs):
    # default socket option of the client's context: applies to the channels opened next
    self.context.setsockopt(zmq.RCVHWM, 0)  # 0 = no limit: queue, never drop
    return _start_channels(self, *args, **kwargs)


KernelClient.start_channels = _start_channels_keeping_every_message
