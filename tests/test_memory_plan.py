"""The memory plan against a real training step of the tiny zoo model, and on the family."""

import pytest
import torch
from peft import get_peft_model

from slmlab import memory_plan, phi3_family, presets, zoo

# the estimate counts tensors: weights, gradients, AdamW moments and what autograd saves
MARGIN = 0.05  # measured: within 3 % (LoRA activations), exact elsewhere


def measured_step_bytes(model, batch: int, seq_len: int) -> dict:
    """The tensors of one AdamW training step, measured: parameters, their gradients and
    optimizer moments (summed after the step) and the activations autograd saved for the
    backward pass (parameters excluded), plus the logits' gradient, all in bytes."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-3)
    ids = torch.randint(0, model.config.vocab_size, (batch, seq_len))
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(tensor):
        pointer = tensor.untyped_storage().data_ptr()
        if pointer not in parameters:
            saved[pointer] = max(saved.get(pointer, 0), tensor.untyped_storage().nbytes())
        return tensor

    model.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        out = model(input_ids=ids, labels=ids, use_cache=False)
    out.loss.backward()
    optimizer.step()
    moments = sum(t.nbytes for state in optimizer.state.values() for t in state.values()
                  if torch.is_tensor(t) and t.dim() > 0)
    return {"weights": sum(p.nbytes for p in model.parameters()),
            "gradients": sum(p.grad.nbytes for p in trainable),
            "optimizer": moments,
            "activations": sum(saved.values()) + out.logits.float().nbytes}  # + d(logits)


@pytest.mark.parametrize("method", ["full", "lora"])
def test_the_estimate_holds_for_a_real_step_of_the_zoo_model(method):
    torch.manual_seed(0)
    model = zoo.load_model("tiny-phi3-teacher", attn_implementation="sdpa")
    r = 4
    if method == "lora":
        model = get_peft_model(model, presets.lora_config(r, 2 * r))
    batch, seq_len = 8, 64
    measured = measured_step_bytes(model, batch, seq_len)
    estimated = memory_plan.estimate(model.config, method, batch, seq_len, weight_bytes=4,
                                     lora_r=r, lora_dropout=presets.LORA_DROPOUT)
    for part in ("weights", "gradients", "optimizer", "activations"):
        assert estimated[part] == pytest.approx(measured[part], rel=MARGIN), part
    assert estimated["total"] == pytest.approx(sum(measured.values()), rel=MARGIN)


def test_the_family_counts_match_the_published_sizes():
    for name, published in (("Phi-3-mini-4k", 3_821_079_552), ("Phi-4-mini", 3_836_021_760),
                            ("Phi-3-medium-4k", 13_960_238_080)):
        counts = memory_plan.parameter_counts(phi3_family.config(name))
        assert counts["linear"] + counts["other"] == published
        assert phi3_family.parameter_count(name) == published  # the meta-device skeleton


def test_the_plan_orders_the_methods_as_the_lesson_says():
    config = phi3_family.config("Phi-3-mini-4k")
    need = {m: memory_plan.estimate(config, m, 4, 1024)["total"] for m in memory_plan.METHODS}
    assert need["qlora"] < need["lora"] < need["full"]
    with_checkpoints = memory_plan.estimate(config, "lora", 4, 1024,
                                            gradient_checkpointing=True)["total"]
    assert with_checkpoints < need["lora"]
    # full fine-tuning of 3.8 B bf16 parameters with AdamW: 8 bytes each before activations
    assert memory_plan.estimate(config, "full", 1, 1)["weights"] == 2 * 3_821_079_552
    rows = memory_plan.plan({"Phi-3-mini-4k": config})
    assert {(r["method"], r["gradient checkpointing"]) for r in rows} == {
        (m, c) for m in memory_plan.METHODS for c in (False, True)}
    qlora = next(r for r in rows if r["method"] == "qlora" and r["gradient checkpointing"])
    assert qlora["smallest GPU that fits"] == "T4"
    with pytest.raises(ValueError, match="method must be one of"):
        memory_plan.estimate(config, "adapters", 1, 1)
