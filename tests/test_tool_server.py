"""Tools in forks of one server: same exit codes and logs as a plain process, one server for
every process that asks, and a server frees its memory when idle or when its owners end."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from slmlab import tools


def test_a_command_runs_in_a_fork_and_an_idle_server_exits(tmp_path):
    env = dict(os.environ, SLMLAB_TOOL_SERVER_IDLE="1")
    (tmp_path / "in.json").write_text('{"a": [1, 2]}')
    assert tools.ask_server("json.tool", ["in.json"], tmp_path / "a.log", tmp_path, env) == 0
    assert '"a": [' in (tmp_path / "a.log").read_text(), "run in cwd, output in its log"
    server = tools.server_pid("json.tool", env)
    assert server is not None and psutil.pid_exists(server)
    assert tools.ask_server("json.tool", ["missing.json"], tmp_path / "b.log", tmp_path, env) == 2
    assert "missing.json" in (tmp_path / "b.log").read_text()
    assert tools.server_pid("json.tool", env) == server, "a failed command ends its child only"
    assert psutil.Process(server).wait(timeout=30) == 0, "an idle server exits"
    assert not tools.socket_path(("json.tool",), env).exists(), "and removes its socket"
    # the next command starts a new server
    assert tools.ask_server("json.tool", ["in.json"], tmp_path / "c.log", tmp_path, env) == 0
    assert tools.server_pid("json.tool", env) not in (None, server)


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
        assert tools.ask_server("draw", [], log, tmp_path, env, ("torch",), seed=seed) == 0
        return drawn(log)

    assert draw("a", 3) == draw("b", 3), "the same seed in two servers: the same numbers"
    assert draw("a", 3) != draw("a", 4)
    assert draw("a", None) != draw("b", None), "unseeded, each server draws its own"


def test_without_a_server_a_seeded_command_draws_as_a_fork_would(tmp_path, monkeypatch):
    (tmp_path / "draw.py").write_text(DRAW)
    env = dict(os.environ, PYTHONPATH=str(tmp_path), SLMLAB_TOOL_SERVER_IDLE="5")
    tools.run_python([sys.executable, "-m", "draw"], tmp_path / "fork.log", "draw", env=env,
                     cwd=tmp_path, preload=("torch",), seed=3)
    monkeypatch.setattr(tools, "ask_server", lambda *args: None)  # no server: the fallback
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
        assert tools.ask_server("name", [], log, tmp_path, dict(env, PYTEST_CURRENT_TEST=test)) == 0
        assert log.read_text().strip() == test
        servers.append(tools.server_pid("name", dict(env, PYTEST_CURRENT_TEST=test)))
    assert servers[0] is not None and servers[0] == servers[1]


# what a tool sees of its caller: the variables a Jupyter kernel sets and a test process does not
SHOW_CALLER = ("import os\nprint(os.getpid(), os.environ.get('JPY_PARENT_PID'), "
               "os.environ.get('MPLBACKEND'))\n")
ASK_FROM_ANOTHER_PROCESS = """
import json, sys
from pathlib import Path
from slmlab import tools
env, log = json.loads(sys.argv[1]), Path(sys.argv[2])
print(tools.ask_server("caller", [], log, log.parent, env), tools.server_pid("caller", env))
"""


def test_a_kernel_and_a_test_process_share_one_server_each_with_its_own_variables(tmp_path):
    """Lab 05's and lab 06's kernels and the test processes ask for the same builder: one
    server imports it for all. Each command still runs with its caller's environment."""
    (tmp_path / "caller.py").write_text(SHOW_CALLER)
    env = dict(os.environ, PYTHONPATH=str(tmp_path), SLMLAB_TOOL_SERVER_IDLE="20")
    env.pop("JPY_PARENT_PID", None)
    env.pop("MPLBACKEND", None)
    assert tools.ask_server("caller", [], tmp_path / "here.log", tmp_path, env) == 0
    server = tools.server_pid("caller", env)
    kernel_env = dict(env, JPY_PARENT_PID="4242", MPLBACKEND="agg", TERM="xterm-color")
    asked = subprocess.run([sys.executable, "-c", ASK_FROM_ANOTHER_PROCESS,
                            json.dumps(kernel_env), str(tmp_path / "there.log")],
                           capture_output=True, text=True, timeout=60, check=True)
    assert asked.stdout.split() == ["0", str(server)], asked.stdout
    here, there = ((tmp_path / name).read_text().split() for name in ("here.log", "there.log"))
    assert here[1:] == ["None", "None"] and there[1:] == ["4242", "agg"]
    assert here[0] != there[0], "each command in a fork of its own"
    other = dict(env, SOME_LIBRARY_SETTING="1")  # anything else: another server
    assert tools.ask_server("caller", [], tmp_path / "other.log", tmp_path, other) == 0
    assert tools.server_pid("caller", other) not in (None, server)


def test_a_server_ends_with_its_owners_and_a_caller_that_leaves_ends_its_command(tmp_path):
    (tmp_path / "sleepy.py").write_text(  # the server imports it: run only as __main__
        "import os, time\nif __name__ == '__main__':\n"
        "    print(os.getpid(), flush=True)\n    time.sleep(120)\n")
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    env = dict(os.environ, PYTHONPATH=str(tmp_path), SLMLAB_TOOL_SERVER_IDLE="600",
               SLMLAB_TOOL_OWNER=str(owner.pid))
    try:
        log = tmp_path / "sleepy.log"
        connection = tools._connect(tools.socket_path(("sleepy",), env)) \
            or tools._start(tools.socket_path(("sleepy",), env), ("sleepy",), env)
        with connection:  # a caller that asks, then stops waiting (an interrupted cell)
            connection.sendall((json.dumps({"module": "sleepy", "args": [], "log": str(log),
                                            "cwd": str(tmp_path), "env": env,
                                            "owner": owner.pid}) + "\n").encode())
            deadline = time.monotonic() + 30
            while not (log.exists() and log.read_text().strip()) and time.monotonic() < deadline:
                time.sleep(0.1)
            connection.shutdown(socket.SHUT_RDWR)
        command = psutil.Process(int(log.read_text().split()[0]))
        command.wait(timeout=10)  # the server ended it (psutil.TimeoutExpired if not)
        server = tools.server_pid("sleepy", env)
        assert server is not None, "an owner is alive: the server stays, despite no command"
        owner.kill()
        owner.wait()
        assert psutil.Process(server).wait(timeout=15) == 0, "its only owner ended: it exits"
    finally:
        owner.kill()


def test_a_socket_folder_others_can_write_is_not_used(tmp_path, monkeypatch):
    """A caller sends its whole environment (tokens included) to the server: only through a
    folder that is this user's alone. Otherwise the tool runs as a plain process."""
    short = Path(tempfile.mkdtemp(prefix="t", dir="/tmp"))  # a socket path has <= 107 bytes
    monkeypatch.setattr(tools.tempfile, "gettempdir", lambda: str(short))
    folder = short / f"slmlab-tools-{os.getuid()}"
    folder.mkdir()
    folder.chmod(0o777)
    (tmp_path / "in.json").write_text('{"a": 1}')
    env = dict(os.environ, SLMLAB_TOOL_SERVER_IDLE="5")
    assert tools.ask_server("json.tool", ["in.json"], tmp_path / "a.log", tmp_path, env) is None
    tools.run_python([sys.executable, "-m", "json.tool", "in.json"], tmp_path / "b.log",
                     "json.tool", env=env, cwd=tmp_path)
    assert '"a": 1' in (tmp_path / "b.log").read_text() and not list(folder.iterdir())
    folder.chmod(0o700)  # this user's alone: used
    assert tools.ask_server("json.tool", ["in.json"], tmp_path / "c.log", tmp_path, env) == 0
    assert tools.server_pid("json.tool", env) is not None
    (tmp_path / ("d" * 90)).mkdir()
    monkeypatch.setattr(tools.tempfile, "gettempdir", lambda: str(tmp_path / ("d" * 90)))
    assert tools.socket_path(("json.tool",), env) is None, "a path too long to bind: no server"
    shutil.rmtree(short, ignore_errors=True)  # the server removes its socket when it ends
