"""slmlab: the helper package of the Phi-3 small-language-model course.

One flat module per concept; labs import from here and never copy code. The module map,
in layers: a module imports only from layers above its own (no cycles).

    0  lexicon  zoo  phi3_family  qlora  saving  environment  targets  resume  tool_server
       bottleneck
       results (the measured spreads in docs/results.json)
       tools <- tool_server
       (search  loralib_swap  labgen: used by labs and commands only; olive_offline: by
        Olive's tool server only)
    1  presets <- phi3_family     memory_plan <- qlora
       task <- lexicon          data <- lexicon          corpus, make_tone_data <- lexicon
       artifact_cache, exercises <- saving
       parameters <- saving, zoo, environment, exercises     progress <- exercises, saving
       course_map <- results          (the labs' titles and times)
    2  metrics <- task          train_loop <- task, presets   distill <- task
       sft <- task, data, zoo, presets, artifact_cache, resume   export <- task, tools, saving
       olive_pipeline <- task, presets, tools        report <- progress, environment, saving
    3  pretrain <- metrics, corpus, zoo                  (builds the zoo: `make zoo`)
       peft_methods, viability <- metrics, train_loop, presets, data, zoo (+ bottleneck)
       real_width <- export, phi3_family, saving, zoo   (`make bench-width`)
       course <- report, progress, saving             playground <- export, task
       checkpoint <- sft, parameters                  (`make checkpoint LAB=NN`)
    4  results_page <- results, course_map, saving   (`make results`)
       widgets <- playground, presets, distill, qlora
    5  bench <- course, results_page    variance <- course
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
