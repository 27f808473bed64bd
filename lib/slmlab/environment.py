"""The environment check: library versions, the device, and free memory (lab 00 runs it first)."""

import importlib.metadata
import os
import platform
import re
from pathlib import Path

import psutil
import torch

from slmlab import REPO_ROOT

COURSE_PACKAGES = ["torch", "transformers", "peft", "trl", "datasets", "accelerate",
                   "loralib", "bitsandbytes", "onnxruntime-genai", "papermill", "nbval"]


def package_versions(names: list[str] = COURSE_PACKAGES) -> dict[str, str]:
    versions = {}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions


def best_device() -> str:
    """"cuda" when a GPU is usable, else "cpu" (what every lab runs on by default)."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def describe() -> dict:
    """Python, CPU cores, torch threads, device, total and available memory."""
    memory = psutil.virtual_memory()
    return {
        "python": platform.python_version(),
        "cpu_cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": best_device(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "memory_total_gb": round(memory.total / 1e9, 1),
        "memory_available_gb": round(memory.available / 1e9, 1),
        "hf_hub_offline": os.environ.get("HF_HUB_OFFLINE", "0"),
    }


def pinned_versions(requirements: Path = REPO_ROOT / "requirements.txt") -> dict[str, str]:
    """{package: version} of every `name==version` line in requirements.txt."""
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", requirements.read_text(), re.MULTILINE)
    return dict(pins)


def off_pin(requirements: Path = REPO_ROOT / "requirements.txt") -> dict[str, tuple[str, str]]:
    """{package: (installed, pinned)} for the course packages this kernel has at other versions."""
    pins = pinned_versions(requirements)
    installed = package_versions([name for name in COURSE_PACKAGES if name in pins])
    return {name: (have, pins[name]) for name, have in installed.items()
            if have.split("+")[0] != pins[name]}


def warn_if_off_pin() -> bool:
    """Print one line when the kernel is not the course's environment (an older .venv, or
    another Python): labs then fail in ways that have nothing to do with the lesson."""
    wrong = off_pin()
    if wrong:
        listed = ", ".join(f"{name} {have} (pinned {pin})" for name, (have, pin) in wrong.items())
        print(f"This kernel is not the course's environment: {listed}. Run `make setup`, then "
              "choose the .venv kernel (`make lab` does both).")
    return not wrong
