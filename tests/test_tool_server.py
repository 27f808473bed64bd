"""Tools in forks of one server: same exit codes and logs as a plain process, and an idle
server frees its memory."""

import os
import time

from slmlab import tool_server


def test_a_command_runs_in_a_fork_and_an_idle_server_exits(tmp_path):
    env = dict(os.environ, SLMLAB_TOOL_SERVER_IDLE="1")
    (tmp_path / "in.json").write_text('{"a": [1, 2]}')
    assert tool_server.run("json.tool", ["in.json"], tmp_path / "a.log", tmp_path, env) == 0
    assert '"a": [' in (tmp_path / "a.log").read_text(), "run in cwd, output in its log"
    server = tool_server.server("json.tool", env)
    assert server is not None and server.poll() is None
    assert tool_server.run("json.tool", ["missing.json"], tmp_path / "b.log", tmp_path, env) == 2
    assert "missing.json" in (tmp_path / "b.log").read_text()
    assert tool_server.server("json.tool", env) is server, "a failed command ends its child only"
    deadline = time.monotonic() + 30
    while server.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert server.poll() == 0, "an idle server exits"
    # the next command starts a new server
    assert tool_server.run("json.tool", ["in.json"], tmp_path / "c.log", tmp_path, env) == 0
    assert tool_server.server("json.tool", env) is not server
