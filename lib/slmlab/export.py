"""ONNX export with the onnxruntime-genai model builder, and generation with ORT-GenAI.

Lab 05 shows the builder command and the generation loop inline; these helpers run them
quietly (the builder logs every tensor) and time them.
"""

import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from safetensors import safe_open

from slmlab import saving, tools
from slmlab.task import label_token_ids


def merged_weight(weight, lora_A, lora_B, alpha: float, r: int):
    """Reference for lab 05's exercise: the weight a LoRA layer computes with, as one matrix."""
    return weight + (alpha / r) * lora_B @ lora_A


def builder_command(model_dir: str | Path, out_dir: str | Path, precision: str,
                    adapter_path: str | Path | None = None,
                    quantize_embeddings: bool = False) -> list[str]:
    """The builder call: local input (-i), CPU, offline (hf_token=false).

    `quantize_embeddings` (int4 only) also stores the embedding table (the Gather op) in
    4 bits; by default the builder keeps it in full precision.
    """
    if precision not in ("fp32", "fp16", "int4"):
        raise ValueError(f"precision must be fp32, fp16 or int4, not {precision!r}")
    if quantize_embeddings and precision != "int4":
        raise ValueError("quantize_embeddings needs precision='int4'")
    options = ["hf_token=false"]
    if precision == "int4":  # blocks of 32 weights; accuracy level 4 = int8 activations
        options += ["int4_block_size=32", "int4_accuracy_level=4"]
    if quantize_embeddings:
        options.append("op_types_to_quantize=MatMul/Gather")
    if adapter_path is not None:
        options.append(f"adapter_path={adapter_path}")
    return [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(model_dir),
            "-o", str(out_dir), "-p", precision, "-e", "cpu", "--extra_options", *options]


# The builder gives every CPU model onnxruntime's GroupQueryAttention, whose CPU kernel
# rejects a head size that is not a multiple of 16 ("head_size shall be a multiple of 16",
# at the first generated token, after a successful build). Phi-3-mini's head size is 96.
GQA_HEAD_MULTIPLE = 16


class NotExportable(ValueError):
    """A model the onnxruntime-genai CPU path cannot run (one line: why, and what can)."""


def export_problem(model_dir: str | Path) -> str | None:
    """Why ORT-GenAI on CPU cannot run the model in `model_dir`, or None if it can (or if
    the folder has no config.json: the builder or the lab's own load says what is wrong)."""
    config_path = Path(model_dir) / "config.json"
    if not config_path.is_file():
        return None
    config = json.loads(config_path.read_text())
    heads = config["num_attention_heads"]
    head_size = config.get("head_dim") or config["hidden_size"] // heads
    if head_size % GQA_HEAD_MULTIPLE:
        return (f"its attention head size is {head_size} (hidden_size {config['hidden_size']} / "
                f"{heads} heads), and onnxruntime's CPU GroupQueryAttention needs a multiple of "
                f"{GQA_HEAD_MULTIPLE}; export tiny-phi3-teacher (head size 64) or Phi-3-mini (96)")
    return None


class AdapterMismatch(ValueError):
    """A LoRA adapter whose matrices do not fit the base model it is exported with."""


def _tensor_shapes(directory: Path) -> dict[str, list[int]]:
    """{name: shape} of every tensor in the folder's safetensors files, without loading them."""
    shapes = {}
    for path in sorted(directory.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as handle:
            shapes |= {name: handle.get_slice(name).get_shape() for name in handle.keys()}
    return shapes


def check_adapter_fits(adapter_dir: str | Path, model_dir: str | Path) -> None:
    """Raise AdapterMismatch (one line naming both) unless every LoRA matrix in the adapter
    has a base weight of the matching shape: same layers, same widths (any rank)."""
    adapter_dir, model_dir = Path(adapter_dir), Path(model_dir)
    config_path = adapter_dir / "adapter_config.json"
    if not config_path.exists():
        raise AdapterMismatch(f"{adapter_dir} is not a PEFT adapter (no adapter_config.json)")
    trained_on = json.loads(config_path.read_text()).get("base_model_name_or_path")
    base = _tensor_shapes(model_dir)
    for name, shape in _tensor_shapes(adapter_dir).items():
        # base_model.model.<module>.lora_A.weight (r x in) / lora_B.weight (out x r)
        module = name.removeprefix("base_model.model.").rsplit(".lora_", 1)
        if len(module) != 2:
            continue
        weight = base.get(f"{module[0]}.weight")
        fits = weight is not None and (shape[1] == weight[1] if module[1].startswith("A")
                                       else shape[0] == weight[0])
        if not fits:
            found = "no such layer" if weight is None else f"base weight {weight}"
            raise AdapterMismatch(
                f"adapter {adapter_dir} (trained on {trained_on}) does not fit base {model_dir}: "
                f"{module[0]} lora_{module[1].split('.')[0]} is {shape}, {found}; export it "
                "with the base it was trained on")


def build_onnx(model_dir: str | Path, out_dir: str | Path, precision: str,
               adapter_path: str | Path | None = None, quantize_embeddings: bool = False) -> Path:
    """Run the builder into a temporary folder that becomes `out_dir` once complete, so a
    failed build (a full disk, a bad input) leaves the previous export intact; on failure
    raise one line with the end of the builder's log, not a bare exit code."""
    out_dir = Path(out_dir)
    problem = export_problem(model_dir)
    if problem:  # fail before a build whose model would only fail at its first token
        raise NotExportable(f"cannot export {model_dir} for ORT-GenAI on CPU: {problem}")
    if adapter_path is not None:
        check_adapter_fits(adapter_path, model_dir)
    log = out_dir.with_name(f"{out_dir.name}.builder.log")  # beside it: kept when a build fails
    kept = f"; the previous {out_dir.name} is intact" if out_dir.exists() else ""
    start = time.perf_counter()
    with saving.replace_atomically(out_dir) as staging:
        command = builder_command(model_dir, staging, precision, adapter_path,
                                  quantize_embeddings)
        try:  # `python -m BUILDER ARGS`, forked from a process that imported torch once
            tools.run_python(command, log, f"onnxruntime-genai builder ({precision})")
        except tools.ToolError as error:
            raise tools.ToolError(f"{error}{kept}") from None
        if not (staging / "genai_config.json").exists():
            raise tools.ToolError(f"onnxruntime-genai builder ({precision}) wrote no "
                                  f"genai_config.json: {tools.last_line(log)} (log {log}){kept}")
    print(f"{precision}: built {out_dir} in {time.perf_counter() - start:.1f} s")
    return out_dir


def og_generate(model, input_ids: Sequence[int], max_new_tokens: int,
                force_length: bool = False, adapters=None, adapter: str | None = None,
                timings: dict | None = None) -> tuple[list[int], float]:
    """Greedy tokens from an `og.Model` and decode tokens/s (prompt processing excluded).

    With `adapters` (an `og.Adapters`) the LoRA adapter named `adapter` is active; a
    `timings` dict receives "switch_ms", the time activating it took.
    """
    import onnxruntime_genai as og

    params = og.GeneratorParams(model)
    total = len(input_ids) + max_new_tokens
    options = {"do_sample": False, "max_length": total}
    if force_length:  # ignore end tokens so every run times the same number of tokens
        options["min_length"] = total
    params.set_search_options(**options)
    generator = og.Generator(model, params)
    switch_start = time.perf_counter()
    if adapters is not None:
        generator.set_active_adapter(adapters, adapter)
    if timings is not None:
        timings["switch_ms"] = 1000 * (time.perf_counter() - switch_start)
    generator.append_tokens([list(input_ids)])
    generator.generate_next_token()  # first token: prompt processing, not decoding
    tokens = [int(generator.get_next_tokens()[0])]
    start = time.perf_counter()
    while not generator.is_done():
        generator.generate_next_token()
        tokens.append(int(generator.get_next_tokens()[0]))
    seconds = time.perf_counter() - start
    return tokens, (len(tokens) - 1) / seconds if len(tokens) > 1 else 0.0


def og_decode_speed(model, input_ids: Sequence[int], new_tokens: int) -> float:
    """Decode tokens/s of one greedy run of exactly `new_tokens` tokens (end tokens ignored)."""
    return og_generate(model, input_ids, new_tokens, force_length=True)[1]


def og_tone_accuracy(model, tokenizer, prompts: Sequence[str], rows: Sequence[dict],
                     adapters=None, adapter: str | None = None) -> float:
    """Share of prompts whose first greedy ORT-GenAI token is the row's label token."""
    label_ids = label_token_ids(tokenizer)
    hits = 0
    for prompt, row in zip(prompts, rows, strict=True):
        ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        tokens, _ = og_generate(model, ids, 1, adapters=adapters, adapter=adapter)
        hits += tokens[0] == label_ids[row["tone"]]
    return hits / len(rows)


def first_divergence(a: Sequence[int], b: Sequence[int]) -> int | None:
    """Index of the first differing token (a length difference counts), or None."""
    for index, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return index
    return None if len(a) == len(b) else min(len(a), len(b))
