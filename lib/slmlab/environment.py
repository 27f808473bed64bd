"""What lab 00 checks first: library versions, the device, and free memory."""

import importlib.metadata
import os
import platform

import psutil
import torch

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
        "memory_total_gb": round(memory.total / 2**30, 1),
        "memory_available_gb": round(memory.available / 2**30, 1),
        "hf_hub_offline": os.environ.get("HF_HUB_OFFLINE", "0"),
    }
