"""The ONNX export path at Phi-3-mini's real width, checked without a GPU or the weights.

A Phi-3-mini-shaped model with random weights and one or two decoder layers (hidden 3072,
32 heads, MLP 8192, the published config otherwise) goes through the same builder calls
as lab 05: fp32, and INT4 with the embedding quantized too. The fp32 export must give
PyTorch's greedy tokens; the INT4/fp32 size ratio is measured part by part (embedding,
decoder layers, lm_head) and extrapolated to Phi-3-mini's 32 layers:

    size(32 layers) = embedding + lm_head + other + 32 x (decoder bytes / layers built)

`python -m slmlab.course.real_width` (`make bench-width`) builds one layer with the full
vocabulary of 32,064 (over 1 GB of fp32 weights) and writes `runs/real_width.json`;
`make results` publishes it in `docs/results.json`, where lab 05 reads it. The test suite
runs the same code with one layer and a small vocabulary.
"""

import argparse
import json
import shutil
import time
from pathlib import Path

import torch
from transformers import Phi3ForCausalLM

from slmlab import RUNS_DIR, export, phi3_family, saving, zoo

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")
PUBLISHED_LAYERS = 32


def build_random_phi3(out_dir: str | Path, layers: int = 1, vocab_size: int | None = None,
                      name: str = "Phi-3-mini-4k", seed: int = 0) -> Path:
    """Save family member `name` with `layers` decoder layers and random weights in Hugging
    Face format, with the zoo's tokenizer (the builder saves one; generation here is by
    token ID). A smaller `vocab_size` keeps every other width real."""
    overrides: dict = {"num_hidden_layers": layers}
    if vocab_size is not None:  # special tokens must lie inside a smaller vocabulary
        last = vocab_size - 1
        overrides |= {"vocab_size": vocab_size, "bos_token_id": 1, "eos_token_id": last,
                      "pad_token_id": last}
    torch.manual_seed(seed)
    model = Phi3ForCausalLM(phi3_family.config(name, **overrides)).eval()
    out_dir = Path(out_dir)
    with saving.replace_atomically(out_dir) as staging:
        model.save_pretrained(staging)
        for file in TOKENIZER_FILES:
            shutil.copy(Path(zoo.resolve("tiny-phi3-teacher")) / file, staging / file)
    return out_dir


def onnx_bytes_by_part(onnx_dir: str | Path) -> dict[str, int]:
    """Bytes of the exported weights, by part: embedding, decoder layers, lm_head, other
    (norms, rotary caches), read from the ONNX graph's initializers without loading them."""
    import onnx

    parts = {"embedding": 0, "decoder layers": 0, "lm_head": 0, "other": 0}
    for path in Path(onnx_dir).glob("*.onnx"):
        graph = onnx.load(str(path), load_external_data=False).graph
        for tensor in graph.initializer:
            if tensor.data_location == onnx.TensorProto.EXTERNAL:
                size = int(next(e.value for e in tensor.external_data if e.key == "length"))
            else:
                size = len(tensor.raw_data) or onnx.numpy_helper.to_array(tensor).nbytes
            name = tensor.name.lower()
            part = ("lm_head" if "lm_head" in name else "embedding" if "embed" in name
                    else "decoder layers" if "layers." in name else "other")
            parts[part] += size
    return parts


def extrapolate(parts: dict[str, int], layers_built: int,
                layers: int = PUBLISHED_LAYERS) -> int:
    """Bytes of the same export with `layers` decoder layers instead of `layers_built`."""
    fixed = parts["embedding"] + parts["lm_head"] + parts["other"]
    return fixed + parts["decoder layers"] * layers // layers_built


def torch_greedy(model_dir: str | Path, prompt: list[int], new_tokens: int) -> list[int]:
    """PyTorch's greedy tokens after `prompt` (end tokens ignored, as in `og_generate`)."""
    model = Phi3ForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    ids = torch.tensor([prompt])
    with torch.no_grad():
        for _ in range(new_tokens):
            next_id = model(input_ids=ids, use_cache=False).logits[0, -1].argmax()
            ids = torch.cat([ids, next_id.view(1, 1)], dim=1)
    return ids[0, len(prompt):].tolist()


def check_export(work_dir: str | Path, layers: int = 1, vocab_size: int | None = None,
                 new_tokens: int = 8) -> dict:
    """Build, export (fp32; INT4 with the embedding quantized), generate and measure."""
    import onnxruntime_genai as og

    work_dir = Path(work_dir)
    model_dir = build_random_phi3(work_dir / "model", layers, vocab_size)
    config = json.loads((model_dir / "config.json").read_text())
    prompt = [(7 * k + 3) % config["vocab_size"] for k in range(8)]
    result: dict = {"layers": layers, "hidden_size": config["hidden_size"],
                    "intermediate_size": config["intermediate_size"],
                    "num_attention_heads": config["num_attention_heads"],
                    "vocab_size": config["vocab_size"], "parts": {}, "build_seconds": {}}
    for precision in ("fp32", "int4"):
        start = time.perf_counter()
        onnx_dir = export.build_onnx(model_dir, work_dir / precision, precision,
                                     quantize_embeddings=precision == "int4")
        result["build_seconds"][precision] = round(time.perf_counter() - start, 1)
        result["parts"][precision] = onnx_bytes_by_part(onnx_dir)
        tokens, _ = export.og_generate(og.Model(str(onnx_dir)), prompt, new_tokens,
                                       force_length=True)
        result[f"{precision}_tokens"] = tokens
    result["torch_tokens"] = torch_greedy(model_dir, prompt, new_tokens)
    result["fp32_parity"] = result["fp32_tokens"] == result["torch_tokens"]
    built = {p: sum(parts.values()) for p, parts in result["parts"].items()}
    at_32 = {p: extrapolate(parts, layers) for p, parts in result["parts"].items()}
    result |= {"bytes": built, "bytes_at_32_layers": at_32,
               "int4_over_fp32": round(built["int4"] / built["fp32"], 4),
               "int4_over_fp32_at_32_layers": round(at_32["int4"] / at_32["fp32"], 4)}
    return result


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description="Lab 05's export at Phi-3-mini's width")
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--vocab-size", type=int, default=None,
                        help="default: Phi-3-mini's 32,064")
    parser.add_argument("--work-dir", type=Path, default=RUNS_DIR / "real_width")
    args = parser.parse_args(argv)
    result = check_export(args.work_dir, args.layers, args.vocab_size)
    path = saving.write_json(RUNS_DIR / "real_width.json", result)
    print(f"fp32 greedy parity with PyTorch: {result['fp32_parity']}; INT4/fp32 size "
          f"{result['int4_over_fp32']:.3f} with {args.layers} layer(s), "
          f"{result['int4_over_fp32_at_32_layers']:.3f} extrapolated to 32: written {path}")
    shutil.rmtree(args.work_dir, ignore_errors=True)  # over 1 GB of weights
    return result


if __name__ == "__main__":
    main()
