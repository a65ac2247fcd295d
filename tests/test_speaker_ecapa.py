"""ECAPA-TDNN head against the official numbers, stage by stage (codecs/speaker case `ecapa.head`, 1e-5)."""

import pytest
import torch
import torch.nn.functional as F

from conftest import load_cases
from t2av_core.speaker.encoder import load_speaker_encoder

TOL = dict(atol=1e-5, rtol=1e-5)


@pytest.fixture(scope="module")
def head_case(parity_dir):
    folder = parity_dir / "codecs" / "speaker"
    manifest, tensors = load_cases(folder, "speaker_tiny")
    case = manifest["cases"]["ecapa.head"]
    head = load_speaker_encoder(folder / "speaker_tiny.pth").net.head
    return head, tensors[case["inputs"]["hidden_states"]], {k: tensors[v] for k, v in case["expected"].items()}


def _chain(x, stages, expected):
    """Apply the named stages in turn, checking each output; return all outputs."""
    outs = []
    for name, stage in stages:
        x = stage(x)
        torch.testing.assert_close(x, expected[name], **TOL, msg=lambda m: f"{name}: {m}")
        outs.append(x)
    return outs


@torch.no_grad()
def test_every_stage_matches_reference(head_case):
    head, hidden, exp = head_case
    torch.testing.assert_close(torch.softmax(head.feature_weight, -1), exp["layer_weights"], **TOL)
    _, x1, x2, x3, x4 = _chain(hidden, [("feat", head.mix_hidden_states), ("layer1", head.layer1),
                                       ("layer2", head.layer2), ("layer3", head.layer3),
                                       ("layer4", head.layer4)], exp)
    # Inside the first SE-Res2 block (the SE output is before the residual add).
    block = head.layer2
    _chain(x1, [(f"layer2.{n}", getattr(block, n))
                for n in ("Conv1dReluBn1", "Res2Conv1dReluBn", "Conv1dReluBn2", "SE_Connect")], exp)
    _chain(torch.cat([x2, x3, x4], dim=1), [
        ("conv_pre_relu", head.conv), ("pooled", lambda x: head.pooling(F.relu(x))), ("pooled_bn", head.bn),
        ("embedding", head.linear)], exp)
    torch.testing.assert_close(head(hidden), exp["embedding"], **TOL)


@torch.no_grad()
def test_weighted_sum_before_instance_norm(head_case):
    head, hidden, exp = head_case
    w = torch.softmax(head.feature_weight, -1)
    mixed = (w[:, None, None, None] * hidden).sum(0).transpose(1, 2) + 1e-6
    torch.testing.assert_close(mixed, exp["weighted_plus_eps"], **TOL)


@torch.no_grad()
def test_head_uses_running_statistics_not_batch_statistics(head_case):
    # One row alone gives the same embedding as inside the batch: BatchNorm must not see the batch.
    head, hidden, exp = head_case
    torch.testing.assert_close(head(hidden[:, 1:]), exp["embedding"][1:], **TOL)
