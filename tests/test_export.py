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


def test_a_model_whose_heads_ort_cannot_run_is_refused_before_any_build(tmp_path):
    from slmlab import export, zoo

    assert export.export_problem(zoo.resolve("tiny-phi3-teacher")) is None
    assert export.export_problem(tmp_path) is None, "no config.json: for the builder to report"
    with pytest.raises(export.NotExportable) as raised:
        export.build_onnx(zoo.resolve("tiny-phi3-student"), tmp_path / "onnx", "fp32")
    message = str(raised.value)
    assert "\n" not in message and "head size is 24" in message
    assert "tiny-phi3-teacher" in message, "it names a model that exports"
    assert not list(tmp_path.iterdir()), "refused before the builder ran"


@pytest.mark.slow
def test_ort_genai_on_cpu_really_rejects_that_head_size(tmp_path):
    # the rule export_problem applies, seen on the real kernel: the builder itself succeeds,
    # generation fails. When an onnxruntime release lifts it, this test says so.
    import onnxruntime_genai as og

    from slmlab import export, tools, zoo

    student = zoo.resolve("tiny-phi3-student")
    tools.run_python(export.builder_command(student, tmp_path / "onnx", "fp32"),
                     tmp_path / "builder.log", "onnxruntime-genai builder (fp32)")
    model = og.Model(str(tmp_path / "onnx"))
    with pytest.raises(Exception, match="head_size shall be a multiple of 16"):
        export.og_generate(model, [1, 2, 3], 2)
