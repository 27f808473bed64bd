import json
import re

import nbformat
import pytest
import torch

from slmlab import REPO_ROOT
from slmlab.course import labgen
from slmlab.exercises import check, todo

SOLUTIONS = sorted((REPO_ROOT / "solutions").glob("*.ipynb"))


def test_check_returns_the_solution_when_right(capsys):
    square = check("square", lambda x: x * x, lambda x: x ** 2, cases=[(2,), (3.0,)])
    assert square(4) == 16 and "✓" in capsys.readouterr().out


def test_check_falls_back_to_the_reference_when_not_done(capsys):
    def unfinished(x):
        todo("square x")

    def reference(x):
        return x * x

    assert check("square", unfinished, reference, cases=[(2,)]) is reference
    assert "not done yet" in capsys.readouterr().out


def test_check_fails_loudly_when_wrong():
    with pytest.raises(AssertionError, match="expected 4"):
        check("square", lambda x: x + x + 1, lambda x: x * x, cases=[(2,)])
    with pytest.raises(AssertionError):
        check("t", lambda: torch.zeros(2), lambda: torch.ones(2), cases=[()])


def test_scaffold_replaces_blocks_and_keeps_the_rest():
    source = ("def f(x):\n"
              "    y = 1\n"
              "    # BEGIN SOLUTION: add one\n"
              "    return x + y\n"
              "    # END SOLUTION\n"
              "print(f)")
    assert labgen.scaffold_source(source) == (
        "def f(x):\n    y = 1\n    # TODO: add one\n    todo('add one')\nprint(f)")


@pytest.mark.parametrize("source", [
    "# BEGIN SOLUTION\nx = 1\n# END SOLUTION",          # not inside a function
    "def f():\n    # BEGIN SOLUTION\n    return 1",      # never closed
    "def f():\n    return 1\n    # END SOLUTION",        # no BEGIN
])
def test_malformed_blocks_are_rejected(source):
    with pytest.raises(ValueError):
        labgen.scaffold_source(source)


def test_labs_are_up_to_date_with_solutions():
    assert labgen.generate(check_only=True) == [], "labs/ is stale: run `make labs`"


def test_generation_detects_a_stale_lab(tmp_path):
    (tmp_path / "labs").mkdir()
    (tmp_path / "solutions").mkdir()
    source = SOLUTIONS[0]
    (tmp_path / "solutions" / source.name).write_text(source.read_text())
    assert labgen.generate(tmp_path / "solutions", tmp_path / "labs") == [source.name]
    assert labgen.generate(tmp_path / "solutions", tmp_path / "labs", check_only=True) == []
    lab = tmp_path / "labs" / source.name
    lab.write_text(lab.read_text().replace("Lab 00", "Lab 0O"))
    assert labgen.generate(tmp_path / "solutions", tmp_path / "labs", check_only=True)


@pytest.mark.parametrize("path", SOLUTIONS + sorted((REPO_ROOT / "labs").glob("*.ipynb")),
                         ids=lambda p: f"{p.parent.name}/{p.name}")
def test_notebook_conventions(path):
    notebook = nbformat.read(path, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), "outputs not stripped"
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    for name in ("seed", "output_dir", r"\w*_id"):  # model_id, or teacher_id / student_id
        assert re.search(rf"^{name} = ", tagged[0].source, flags=re.M), name
    sources = "\n".join(c.source for c in code)
    assert "pip install" not in sources and "metrics.json" in sources
    assert "check(" in sources, "every lab has at least one checked exercise"
    if path.parent.name == "solutions":
        assert "# BEGIN SOLUTION" in sources
    else:
        assert "# BEGIN SOLUTION" not in sources and "todo(" in sources
    json.dumps(notebook)  # serialisable, no stray objects


def _rejected_with(name, wrong, reference, cases, hint, expected_words):
    with pytest.raises(AssertionError) as raised:
        check(name, wrong, reference, cases, hint=hint)
    assert all(word in str(raised.value) for word in expected_words), str(raised.value)


def test_a_kd_loss_with_the_wrong_reduction_is_rejected_with_a_useful_hint():
    import torch.nn.functional as F

    from slmlab.distill import kd_loss

    def mean_reduction(label_logits, logits, teacher_probs, targets, temperature, alpha):
        soft = F.kl_div(F.log_softmax(label_logits / temperature, -1), teacher_probs,
                        reduction="mean")
        return alpha * temperature**2 * soft + (1 - alpha) * F.cross_entropy(logits, targets)

    generator = torch.Generator().manual_seed(0)
    case = (torch.randn(5, 4, generator=generator), torch.randn(5, 30, generator=generator),
            torch.softmax(torch.randn(5, 4, generator=generator), -1),
            torch.randint(0, 30, (5,), generator=generator), 2.0, 0.5)
    # the lab's own hint text: read it from the notebook so the test tracks what learners see
    notebook = (REPO_ROOT / "solutions" / "01_distillation.ipynb").read_text()
    assert "reduction='batchmean'" in notebook
    _rejected_with("kd_loss", mean_reduction, kd_loss, [case],
                   "check the KL term: reduction='batchmean'", ["kd_loss", "batchmean"])


def test_softening_without_the_temperature_is_rejected():
    from slmlab.distill import soften

    logits = torch.tensor([[2.0, 0.5, -1.0, 0.0]])
    with pytest.raises(AssertionError, match="soften"):
        check("soften", lambda x, t: torch.softmax(x, -1), soften, [(logits, 2.0)])


def test_a_merge_without_the_lora_scale_is_rejected_with_its_hint():
    from slmlab.export import merged_weight

    generator = torch.Generator().manual_seed(0)
    case = (torch.randn(6, 4, generator=generator), torch.randn(2, 4, generator=generator),
            torch.randn(6, 2, generator=generator), 4, 2)
    _rejected_with("merge_weight", lambda w, a, b, alpha, r: w + b @ a, merged_weight, [case],
                   "the update is scaled by alpha / r", ["merge_weight", "alpha / r"])
    assert torch.allclose(merged_weight(*case), case[0] + 2 * case[2] @ case[1])


def test_a_chat_template_that_only_knows_user_turns_is_rejected(student):
    _, tokenizer = student

    def user_only(messages):  # the one-turn answer printed above the exercise, generalized wrongly
        return "".join(f"<|user|>\n{m['content']}<|end|>\n" for m in messages) + "<|assistant|>\n"

    def reference(messages):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    conversation = [{"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "Hi?"}]
    _rejected_with("render_chat", user_only, reference, [(conversation,)],
                   "every turn ends with <|end|> and a newline, whatever its role",
                   ["render_chat", "<|system|>", "whatever its role"])


# --- Every exercise's usual mistake is caught, with a hint -----------------------------------
# The lab's own cases (copied where they are literals) against a plausible wrong answer.
# answer_with (lab 06) needs the lab's ONNX adapters: the lab's run checks it.

def lab_has_hint(lab: str, name: str) -> bool:
    """Whether the solution notebook's `check("name", ...)` call passes a hint."""
    notebook = nbformat.read(next((REPO_ROOT / "solutions").glob(f"{lab}_*.ipynb")), 4)
    source = "\n".join(c.source for c in notebook.cells if c.cell_type == "code")
    call, depth = source[re.search(rf'check\(\s*"{name}"', source).start():], 0
    for end, char in enumerate(call):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == ")" and depth == 0:
            return "hint=" in call[:end]
    return False


def _cases_reject(name, wrong, reference, cases):
    with pytest.raises(AssertionError, match=re.compile(f"✗ {name}.*— the hint", re.S)):
        check(name, wrong, reference, cases, hint="the hint")


def test_every_exercise_check_in_the_labs_gives_a_hint():
    names = {"00": ["render_chat"], "01": ["kd_loss", "soften"],
             "02": ["lora_forward", "lora_parameter_count"],
             "03": ["make_lora_config", "to_example"], "04": ["nf4_round_trip", "four_bit_bytes"],
             "05": ["merge_weight", "first_divergence"], "06": ["make_passes", "answer_with"],
             "07": ["sample_config", "should_stop"], "08": ["lora_params", "soft_prompt_params"]}
    missing = [(lab, n) for lab, ns in names.items() for n in ns if not lab_has_hint(lab, n)]
    assert not missing, missing


def test_soften_over_the_wrong_dimension_is_rejected():
    from slmlab.distill import soften

    logits = torch.randn(8, 4, generator=torch.Generator().manual_seed(0))
    _cases_reject("soften", lambda x, t: torch.softmax(x / t, dim=0), soften,
                  [(logits, t) for t in (0.5, 1.0, 2.0, 4.0)])


def test_a_lora_forward_without_the_scale_is_rejected():
    from slmlab.export import merged_weight

    generator = torch.Generator().manual_seed(0)

    def case(n_in, n_out, r, alpha):
        def random(*shape):
            return torch.randn(*shape, generator=generator)
        return random(3, n_in), random(n_out, n_in), random(r, n_in), random(n_out, r), alpha, r

    def right(x, w, a, b, alpha, r):  # the merged weight computes the same forward
        return x @ merged_weight(w, a, b, alpha, r).T

    _cases_reject("lora_forward", lambda x, w, a, b, alpha, r: x @ w.T + x @ a.T @ b.T, right,
                  [case(16, 8, 4, 8), case(32, 32, 2, 16), case(8, 24, 8, 8)])


def test_a_lora_count_that_forgets_the_b_matrix_is_rejected(student):
    import loralib

    from slmlab import zoo
    from slmlab.loralib_swap import swap_attention
    from slmlab.metrics import count_parameters

    config = student[0].config
    shape = (config.hidden_size, config.num_hidden_layers)

    def measured(hidden, layers, r, qkv, o_proj):
        model = zoo.load_model("tiny-phi3-student")
        swap_attention(model, r=r, alpha=2 * r, qkv=qkv, o_proj=o_proj)
        loralib.mark_only_lora_as_trainable(model)
        return count_parameters(model, trainable_only=True)

    def a_only(hidden, layers, r, qkv, o_proj):
        return layers * (sum(qkv) + o_proj) * r * hidden

    _cases_reject("lora_parameter_count", a_only, measured,
                  [(*shape, 8, (True, False, True), True), (*shape, 4, (True, True, True), False)])


def test_llama_module_names_in_a_phi3_lora_config_are_rejected():
    from peft import LoraConfig

    from slmlab import sft

    def llama(r):
        return LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.0, task_type="CAUSAL_LM",
                          target_modules=["q_proj", "v_proj"])

    _cases_reject("make_lora_config", llama,
                  lambda r: sft.lora_config(r, alpha=2 * r, dropout=0.0), [(4,), (16,)])


def test_a_prompt_without_its_last_newline_is_rejected(tone_rows):
    from slmlab.task import text_example

    def no_newline(row):
        return {"prompt": f"### Text: {row['phrase']}\n### The tone is:",
                "completion": row["tone"]}

    _cases_reject("to_example", no_newline, lambda row: text_example(row["phrase"], row["tone"]),
                  [(row,) for row in tone_rows["train"][:3]])


def test_nf4_with_one_absmax_for_the_whole_tensor_is_rejected():
    from slmlab import qlora

    def global_absmax(weight, block_size):
        scale = weight.abs().max()
        blocks = weight.float().reshape(-1, block_size) / scale
        nearest = (blocks.unsqueeze(-1) - qlora.NF4_LEVELS).abs().argmin(dim=-1)
        return (qlora.NF4_LEVELS[nearest] * scale).reshape(weight.shape)

    weight = torch.randn(256, 64, generator=torch.Generator().manual_seed(0))
    _cases_reject("nf4_round_trip", global_absmax, qlora.nf4_roundtrip,
                  [(weight, 64), (weight[:128], 32)])


def test_four_bit_bytes_without_the_second_level_scales_is_rejected():
    from slmlab import qlora

    def one_level(n):
        return n // 2 + n // 64 + 256 * 4

    _cases_reject("four_bit_bytes", one_level, qlora.four_bit_bytes,
                  [(256 * 768,), (256 * 256,), (3072 * 9216,)])


def test_first_divergence_that_ignores_a_longer_list_is_rejected():
    from slmlab.export import first_divergence

    def zip_only(a, b):
        return next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), None)

    _cases_reject("first_divergence", zip_only, first_divergence,
                  [([1, 2, 3], [1, 2, 3]), ([1, 2, 3], [1, 5, 3]), ([1, 2], [1, 2, 3]), ([], [4])])


def test_olive_passes_without_lora_dropout_are_rejected():
    from slmlab import olive_pipeline

    def no_dropout(r, steps):
        passes = olive_pipeline.lora_passes(r, steps)
        del passes["lora"]["lora_dropout"]
        return passes

    _cases_reject("make_passes", no_dropout, olive_pipeline.lora_passes, [(4, 150), (8, 10)])


def test_a_uniform_learning_rate_draw_is_rejected():
    import math
    import random

    from slmlab import hyperparameter_search

    def uniform(rng):
        lr = rng.uniform(1e-3, 1e-2)
        return {"learning_rate": float(f"{lr:.2e}"), "rank": rng.choice([2, 4, 8, 16]),
                "batch_size": rng.choice([8, 16])}

    assert math.isclose(math.log10(1e-2) - math.log10(1e-3), 1)  # a decade: log-uniform matters
    _cases_reject("sample_config", lambda s: uniform(random.Random(s)),
                  lambda s: hyperparameter_search.sample_config(random.Random(s)),
                  [(0,), (1,), (7,)])


def test_early_stopping_that_counts_a_tie_as_progress_is_rejected():
    from slmlab import train_loop

    def tie_is_progress(losses, patience):
        return len(losses) > patience and min(losses[-patience:]) > min(losses[:-patience])

    _cases_reject("should_stop", tie_is_progress, train_loop.should_stop,
                  [([1.0, 0.9], 2), ([1.0, 0.8, 0.9, 0.85], 2), ([1.0, 0.8, 0.9, 0.7], 2),
                   ([0.5, 0.5, 0.5], 2), ([0.9, 0.8, 0.7, 0.6], 1)])


def test_parameter_counts_that_miss_a_factor_are_rejected(student):
    from peft import PrefixTuningConfig, get_peft_model

    from slmlab import presets, zoo
    from slmlab.metrics import count_parameters

    base = student[0]
    shapes = [(m.in_features, m.out_features) for name, m in base.named_modules()
              if isinstance(m, torch.nn.Linear)
              and name.split(".")[-1] in presets.PHI3_LORA_TARGETS]

    def peft_lora_count(r, _shapes):
        return count_parameters(presets.add_lora(zoo.load_model("tiny-phi3-student"), r, 2 * r),
                                trainable_only=True)

    _cases_reject("lora_params", lambda r, s: sum(r * fan_in for fan_in, _ in s),
                  peft_lora_count, [(2, shapes), (4, shapes)])

    def peft_prefix_count(tokens, hidden, layers):
        model = zoo.load_model("tiny-phi3-student")
        config = PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=tokens)
        return count_parameters(get_peft_model(model, config), trainable_only=True)

    config = base.config
    _cases_reject("soft_prompt_params", lambda tokens, hidden, layers: tokens * layers * hidden,
                  peft_prefix_count, [(8, config.hidden_size, config.num_hidden_layers)])


def test_a_check_leaves_the_random_generators_as_it_found_them(capsys):
    # lab 02's reference builds a loralib layer (random init): how often it runs depends on
    # whether the exercise is done, and the lab's training after it must not
    import random

    def reference_that_draws(x):
        random.random()
        return x + 0 * torch.randn(1).item()

    def unfinished(x):
        todo("not yet")

    torch.manual_seed(3)
    random.seed(3)
    untouched = torch.rand(2), random.random()
    for solution in (reference_that_draws, unfinished):
        torch.manual_seed(3)
        random.seed(3)
        check("draws", solution, reference_that_draws, [(1.0,), (2.0,)])
        after = torch.rand(2), random.random()
        assert torch.equal(after[0], untouched[0]) and after[1] == untouched[1], solution
