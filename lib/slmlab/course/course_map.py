"""The course map: each lab's title, what it teaches, and how long it takes.

One source for the README's course map, the labs' "Time:" lines and the instructor's guide.
A lab's compute time comes from measured runs in `docs/results.json` (one lab at a time,
as a learner's kernel runs it); the working time is the course's plan for a workshop:
reading, running, the exercises and the questions, not a measurement.
"""

import math
from dataclasses import dataclass

from slmlab import results as course_results


@dataclass(frozen=True)
class Lab:
    """One lab of the map: its notebook stem, title, lesson and planned working minutes."""

    stem: str
    title: str
    learn: str
    working_minutes: tuple[int, int]

    @property
    def number(self) -> str:
        return self.stem[:2]


LABS = [
    Lab("00_setup_tour", "Setup tour",
        "the environment check, the model zoo, tokenizer and chat template, generation, "
        "papermill parameters", (20, 30)),
    Lab("01_distillation", "Distillation",
        "a teacher labels and writes data, a much smaller student learns from it; hard labels "
        "vs logit KD, and where distillation pays: few gold labels", (40, 60)),
    Lab("02_loralib_layer_swaps", "LoRA from the inside",
        "the LoRA forward by hand, `lora.Linear` / `lora.MergedLinear` / `lora.Embedding` "
        "swaps into Phi-3, saving only the adapter", (40, 60)),
    Lab("03_peft_lora_sft", "PEFT LoRA with TRL",
        "PEFT `LoraConfig` on Phi-3's fused modules, TRL `SFTTrainer`, checkpoints and "
        "resume, overfitting remedies", (45, 60)),
    Lab("04_qlora", "QLoRA",
        "a 4-bit NF4 base with double quantization (bitsandbytes), LoRA trained on top",
        (30, 45)),
    Lab("05_merge_int4_export", "Merge and INT4 export",
        "`merge_and_unload`, the ONNX Runtime GenAI builder (fp32, INT4), generation, "
        "adapters at runtime", (30, 45)),
    Lab("06_olive_pipeline", "Olive pipeline",
        "the same path through one Olive config and the Olive CLI; several adapters on one "
        "ONNX base", (30, 45)),
    Lab("07_tuning_and_evaluation", "Tuning and evaluation",
        "a random search with a baseline over learning rates from too low to too high, an "
        "explorer over the stored sweep, F1 and confusion matrix, forgetting, early "
        "stopping, a custom loss", (45, 60)),
    Lab("08_peft_methods_compared", "PEFT methods compared",
        "full fine-tuning vs LoRA vs QLoRA vs IA3 vs bottleneck adapters (by hand) vs prompt "
        "and prefix tuning at one budget, each at its best learning rate; the memory plan "
        "for Phi-3-mini and Phi-4-mini",
        (30, 45)),
]


def lab(stem_or_number: str) -> Lab:
    """A lab by notebook stem ("03_peft_lora_sft") or number ("03")."""
    for entry in LABS:
        if stem_or_number in (entry.stem, entry.number):
            return entry
    raise KeyError(f"no lab {stem_or_number!r}; the labs are "
                   f"{', '.join(entry.stem for entry in LABS)}")


def compute_seconds(stem: str, results: dict | None = None) -> tuple[float, float] | None:
    """(fastest, slowest) measured seconds of a lab run one lab at a time (as a learner's
    kernel runs it, with every core), or None when no such run is recorded."""
    results, stem = results or course_results.load(), lab(stem).stem
    seconds = [run["lab_seconds"][stem] for run in results.get("timings", [])
               if run.get("conditions", {}).get("labs_side_by_side") == 1
               and stem in run.get("lab_seconds", {})]
    return (min(seconds), max(seconds)) if seconds else None


def minutes_text(seconds: tuple[float, float] | None) -> str:
    """"under 1 min", "about 2 min", "1–3 min" from a (fastest, slowest) pair."""
    if seconds is None:
        return "not measured yet"
    low, high = max(1, round(seconds[0] / 60)), max(1, math.ceil(seconds[1] / 60))
    if seconds[1] < 60:
        return "under 1 min"
    return f"about {high} min" if low >= high else f"{low}–{high} min"


def compute_text(stem: str, results: dict | None = None) -> str:
    """A lab's compute time on the recorded CPU, e.g. "1–2 min" (stem or number)."""
    return minutes_text(compute_seconds(stem, results))


def working_text(stem: str) -> str:
    low, high = lab(stem).working_minutes
    return f"{low}–{high} min"


def time_line(stem: str, results: dict | None = None) -> str:
    """The lab's "Time:" line, e.g. "**Time:** 1–2 min of compute on a 2-core CPU; 45–60 min
    to work through."."""
    cores = next((run["conditions"].get("cores") for run in
                  (results or course_results.load()).get("timings", [])), None)
    where = f"a {cores}-core CPU" if cores else "a laptop CPU"
    return (f"**Time:** {compute_text(stem, results)} of compute on {where}; "
            f"{working_text(stem)} to work through.")
