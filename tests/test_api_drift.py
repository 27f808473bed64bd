"""The library calls the course makes exist, with the arguments it passes, in the pins.

When a pin moves, this test names the call that broke before any notebook does.
Covers calls made now and the ones the GPU / scale-out path relies on.
"""

import dataclasses
import importlib
import inspect

import pytest

# (module, attribute path, keyword arguments the course passes)
CALLS = [
    ("transformers", "Phi3Config", ["vocab_size", "hidden_size", "intermediate_size",
     "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
     "max_position_embeddings", "original_max_position_embeddings", "tie_word_embeddings",
     "bos_token_id", "eos_token_id", "pad_token_id"]),
    ("transformers", "GenerationConfig.__init__", []),
    ("transformers", "BitsAndBytesConfig.__init__", ["load_in_4bit", "bnb_4bit_quant_type",
     "bnb_4bit_use_double_quant", "bnb_4bit_compute_dtype"]),
    ("transformers.generation", "GenerationMixin.generate", []),
    ("peft", "LoraConfig", ["r", "lora_alpha", "lora_dropout", "target_modules", "task_type"]),
    ("peft", "get_peft_model", ["model", "peft_config"]),
    ("peft", "prepare_model_for_kbit_training", ["model"]),
    ("peft", "LoraModel.merge_and_unload", []),
    ("trl", "SFTConfig", ["max_length", "completion_only_loss", "bf16", "use_cpu",
     "gradient_checkpointing", "learning_rate", "max_steps", "logging_steps", "eval_steps",
     "save_steps", "output_dir", "report_to"]),
    ("trl", "SFTTrainer.__init__", ["model", "args", "train_dataset", "eval_dataset",
     "processing_class", "peft_config"]),
    ("datasets", "load_dataset", ["data_files", "split"]),
    ("huggingface_hub", "snapshot_download", ["allow_patterns"]),
    ("papermill", "execute_notebook", ["cwd", "parameters", "progress_bar"]),
    ("tokenizers.trainers", "BpeTrainer", []),
    ("loralib", "Linear.__init__", ["r", "lora_alpha", "lora_dropout", "merge_weights"]),
    ("loralib", "MergedLinear.__init__", ["r", "lora_alpha", "enable_lora", "merge_weights"]),
    ("loralib", "Embedding.__init__", ["r", "lora_alpha"]),
    ("loralib", "mark_only_lora_as_trainable", ["model", "bias"]),
    ("loralib", "lora_state_dict", ["model", "bias"]),
    ("bitsandbytes.functional", "quantize_4bit", ["blocksize", "quant_type"]),
    ("bitsandbytes.nn", "Linear4bit.__init__", ["compute_dtype", "quant_type"]),
    ("onnxruntime_genai.models.builder", "create_model", []),
    ("onnxruntime_genai", "Model", []),
    ("onnxruntime_genai", "Tokenizer", []),
    ("onnxruntime_genai", "GeneratorParams", []),
    ("onnxruntime_genai", "Generator", []),
    ("onnxruntime_genai", "Adapters", []),
]


def resolve(module: str, path: str):
    obj = importlib.import_module(module)
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def accepted_names(obj) -> tuple[set[str], bool]:
    """Argument names `obj` accepts, and whether it also takes **kwargs."""
    if dataclasses.is_dataclass(obj):
        return {f.name for f in dataclasses.fields(obj)}, False
    try:
        parameters = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):  # compiled (pybind) callables: existence is the check
        return set(), True
    names = {p.name for p in parameters}
    return names, any(p.kind is p.VAR_KEYWORD for p in parameters)


@pytest.mark.parametrize("module, path, keywords", CALLS, ids=[f"{m}.{p}" for m, p, _ in CALLS])
def test_call_exists_with_our_arguments(module, path, keywords):
    obj = resolve(module, path)
    assert callable(obj)
    names, takes_any = accepted_names(obj)
    if keywords and not names and takes_any:
        return
    missing = [k for k in keywords if k not in names]
    # a **kwargs catch-all would swallow a renamed argument silently: be strict for configs
    assert not missing, f"{module}.{path} no longer takes {missing}"


def test_from_pretrained_takes_dtype_not_torch_dtype():
    from transformers import AutoModelForCausalLM

    from slmlab import zoo

    model = AutoModelForCausalLM.from_pretrained(zoo.resolve("tiny-phi3-student"),
                                                 dtype="bfloat16")
    assert str(model.dtype) == "torch.bfloat16"


def test_phi3_config_uses_rope_parameters():
    from transformers import Phi3Config

    assert "rope_theta" in Phi3Config().rope_parameters
