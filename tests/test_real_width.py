"""Lab 05's export path at Phi-3-mini's full width: one decoder layer, a small vocabulary."""

import pytest

from slmlab.course import real_width


@pytest.mark.slow
def test_the_export_at_full_width_keeps_greedy_parity_and_the_int4_ratio(tmp_path):
    result = real_width.check_export(tmp_path, layers=1, vocab_size=512)
    assert (result["hidden_size"], result["intermediate_size"],
            result["num_attention_heads"]) == (3072, 8192, 32)
    assert result["fp32_parity"], (result["fp32_tokens"], result["torch_tokens"])
    assert len(result["int4_tokens"]) == len(result["torch_tokens"]) == 8
    fp32, int4 = result["parts"]["fp32"], result["parts"]["int4"]
    # fp32: every decoder weight of one layer at 4 bytes
    assert fp32["decoder layers"] >= 4 * (3072 * 9216 + 3072 * 3072 + 3072 * 16384
                                          + 8192 * 3072)
    # INT4 in blocks of 32 with an fp32 scale: 5 bits a weight, 5/32 of fp32
    assert int4["decoder layers"] / fp32["decoder layers"] == pytest.approx(5 / 32, rel=0.02)
    assert int4["embedding"] / fp32["embedding"] == pytest.approx(5 / 32, rel=0.05)
    expected = (sum(fp32.values()) + 31 * fp32["decoder layers"])
    assert result["bytes_at_32_layers"]["fp32"] == expected
    assert result["int4_over_fp32_at_32_layers"] < 1 / 6
