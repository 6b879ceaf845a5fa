"""A real TensorBoard for tests: the venv's own, started on a free local port, and its hparams plugin's endpoints."""
from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

STATUSES = ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]
START_S = 90  # a loaded 2-core machine can take a while to import TensorBoard and read the logdir


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def post(url: str, endpoint: str, body: dict) -> dict:
    request = urllib.request.Request(f"{url}/data/plugin/hparams/{endpoint}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def experiment(url: str) -> dict:
    return post(url, "experiment", {"experimentName": ""})


def session_groups(url: str) -> list[dict]:
    body = {"experimentName": "", "allowedStatuses": STATUSES, "startIndex": 0, "sliceSize": 1000}
    return post(url, "session_groups", body).get("sessionGroups", [])


@contextlib.contextmanager
def tensorboard(logdir: Path, *flags: str, log: Path):
    """``tensorboard --logdir <logdir> [flags]`` as a user starts it; yields its URL once it answers."""
    binary = Path(sys.executable).with_name("tensorboard")
    command = [str(binary)] if binary.is_file() else [sys.executable, "-m", "tensorboard.main"]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with open(log, "wb") as output:
        process = subprocess.Popen([*command, "--logdir", str(logdir), "--host", "127.0.0.1", "--port", str(port),
                                    *flags], stdout=output, stderr=subprocess.STDOUT,
                                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        deadline = time.monotonic() + START_S
        while True:
            if process.poll() is not None:
                raise AssertionError(f"tensorboard ended with {process.returncode}: {log.read_text()[-2000:]}")
            try:
                urllib.request.urlopen(f"{url}/data/plugins_listing", timeout=5).read()
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    raise AssertionError(f"tensorboard did not answer in {START_S} s: "
                                         f"{log.read_text()[-2000:]}") from None
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def loaded_groups(url: str, expected: int) -> list[dict]:
    """The session groups once TensorBoard has read at least ``expected`` sessions and two answers a
    second apart agree (it reads the logdir in the background after it starts answering)."""
    deadline = time.monotonic() + START_S
    previous = None
    while True:
        groups = session_groups(url)
        if (len(groups) >= expected and groups == previous) or time.monotonic() > deadline:
            return groups
        previous = groups
        time.sleep(1)
