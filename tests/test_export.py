import pytest

from slmlab.export import builder_command, first_divergence


def test_builder_command_is_local_offline_and_int4_blocked():
    command = builder_command("models/x", "runs/y", "int4", adapter_path="runs/a")
    assert command[command.index("-i") + 1] == "models/x" and "-m" not in command[3:]
    assert "hf_token=false" in command and "int4_block_size=32" in command
    assert "int4_accuracy_level=4" in command and "adapter_path=runs/a" in command
    assert "int4_block_size=32" not in builder_command("m", "o", "fp32")
    with pytest.raises(ValueError):
        builder_command("m", "o", "int3")


def test_embeddings_are_quantized_only_when_asked_and_only_in_int4():
    assert not [o for o in builder_command("m", "o", "int4") if "op_types" in o]
    quantized = builder_command("m", "o", "int4", quantize_embeddings=True)
    assert "op_types_to_quantize=MatMul/Gather" in quantized
    with pytest.raises(ValueError, match="int4"):
        builder_command("m", "o", "fp32", quantize_embeddings=True)


def test_first_divergence():
    assert first_divergence([1, 2], [1, 2]) is None
    assert first_divergence([1, 2], [1, 3]) == 1
    assert first_divergence([1], [1, 2]) == 1
