"""Tools in forks of one server: same exit codes and logs as a plain process, and an idle
server frees its memory."""

import os
import sys
import time

from slmlab import tool_server, tools


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


DRAW = "import torch\nprint('drawn', torch.rand(3).tolist())\n"


def drawn(log) -> str:
    return next(line for line in log.read_text().splitlines() if line.startswith("drawn"))


def test_a_seeded_command_draws_the_same_numbers_in_any_server(tmp_path):
    """torch seeds itself from the OS in every process, so two servers' forks draw different
    numbers unless the command is seeded (Olive's LoRA pass draws its adapter's weights so)."""
    (tmp_path / "draw.py").write_text(DRAW)

    def draw(server_name: str, seed: int | None) -> str:
        env = dict(os.environ, PYTHONPATH=str(tmp_path), SLMLAB_TOOL_SERVER_IDLE="5",
                   WHICH_SERVER=server_name)  # another environment: another server
        log = tmp_path / f"{server_name}-{seed}.log"
        assert tool_server.run("draw", [], log, tmp_path, env, ("torch",), seed=seed) == 0
        return drawn(log)

    assert draw("a", 3) == draw("b", 3), "the same seed in two servers: the same numbers"
    assert draw("a", 3) != draw("a", 4)
    assert draw("a", None) != draw("b", None), "unseeded, each server draws its own"


def test_without_a_server_a_seeded_command_draws_as_a_fork_would(tmp_path, monkeypatch):
    (tmp_path / "draw.py").write_text(DRAW)
    env = dict(os.environ, PYTHONPATH=str(tmp_path), SLMLAB_TOOL_SERVER_IDLE="5")
    tools.run_python([sys.executable, "-m", "draw"], tmp_path / "fork.log", "draw", env=env,
                     cwd=tmp_path, preload=("torch",), seed=3)
    monkeypatch.setattr(tool_server, "run", lambda *args: None)  # no server: the fallback
    for name in ("plain-1", "plain-2"):
        tools.run_python([sys.executable, "-m", "draw"], tmp_path / f"{name}.log", "draw",
                         env=env, cwd=tmp_path, seed=3)
    assert drawn(tmp_path / "plain-1.log") == drawn(tmp_path / "plain-2.log") \
        == drawn(tmp_path / "fork.log")


def test_commands_of_other_tests_share_a_server_and_each_sees_its_own_test_name(tmp_path):
    """pytest names the running test in the environment: tests that run the same tool must
    not each start (and import) a server of their own, and each command sees its own name."""
    (tmp_path / "name.py").write_text("import os\nprint(os.environ['PYTEST_CURRENT_TEST'])\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path), SLMLAB_TOOL_SERVER_IDLE="5")
    servers = []
    for test in ("test_a (call)", "test_b (call)"):
        log = tmp_path / f"{test[:6]}.log"
        assert tool_server.run("name", [], log, tmp_path, dict(env, PYTEST_CURRENT_TEST=test)) == 0
        assert log.read_text().strip() == test
        servers.append(tool_server.server("name", dict(env, PYTEST_CURRENT_TEST=test)))
    assert servers[0] is not None and servers[0] is servers[1]
