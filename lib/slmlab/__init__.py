"""slmlab: the helper package of the Phi-3 small-language-model course.

This is the learner zone: what the labs, their widgets and `make progress` import, one flat
module per concept; labs import from here and never copy code. What runs and measures the
course (the runner, report, benchmarks, notebook generator, data builders) is the
sub-package `slmlab.course`, which this zone never imports.

Module map (generated from the imports by `python -m slmlab.course.module_map`):
layer, module, what it imports from the package.

    0  bottleneck
    0  environment
    0  lexicon
    0  loralib_swap
    0  olive_offline
    0  phi3_family
    0  qlora
    0  results
    0  resume
    0  saving
    0  targets
    0  tools
    0  zoo
    1  artifact_cache         <- saving
    1  corpus                 <- lexicon
    1  data                   <- lexicon
    1  exercises              <- saving
    1  hyperparameter_search  <- results
    1  memory_plan            <- qlora
    1  presets                <- phi3_family
    1  task                   <- lexicon
    2  distill                <- lexicon, task
    2  export                 <- saving, task, tools
    2  metrics                <- lexicon, task
    2  progress               <- exercises, saving
    2  sft                    <- artifact_cache, data, presets, resume, saving, task, zoo
    2  train_loop             <- presets, task
    3  olive_pipeline         <- metrics, presets, task, tools, zoo
    3  parameters             <- environment, exercises, export, saving, zoo
    3  peak_memory            <- metrics
    3  playground             <- export, task
    3  pretrain               <- corpus, lexicon, metrics, zoo
    4  peft_methods           <- bottleneck, data, metrics, peak_memory, presets, qlora, task,
                                 tools, train_loop, zoo
    4  widgets                <- distill, hyperparameter_search, lexicon, playground, presets, qlora
"""

import logging
import warnings
from pathlib import Path

__version__ = "0.1.0"

# The repository root: lib/slmlab/__init__.py -> parents[2]. Labs and scripts resolve
# data/ and models/ from here so they work from any working directory.
REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = REPO_ROOT / "data"
MODELS_DIR = REPO_ROOT / "models"
RUNS_DIR = REPO_ROOT / "runs"

# bitsandbytes logs a warning on CPUs with AVX512-BF16 when the optional `kernels`
# package (which downloads kernels from the hub) is absent; its built-in fallback works.
# It logs while it is imported (peft and trl import it), so labs import slmlab first.
logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
# PEFT 0.21 and TRL 1.16 still use transformers' old `gradient_checkpointing` names, which
# transformers 5.23 deprecates for `activation_checkpointing`: not ours to fix.
warnings.filterwarnings("ignore", message=".*gradient_checkpointing.*", category=FutureWarning)
