"""The committed demo weights: they load with the strict loader and still lip-sync."""

import statistics

import pytest
import torch

from t2av_core.demo.bundle import ASSETS, WEIGHTS_NAME, load_demo
from t2av_core.demo.corpus import corpus_texts
from t2av_core.demo.evaluation import evaluate_text, held_out_texts
from t2av_core.demo.training import demo_config
from t2av_core.model.config import TalkerConfig
from t2av_core.model.talker import read_safetensors



@pytest.fixture(scope="module")
def bundle():
    torch.set_num_threads(1)
    return load_demo()


def test_bundle_is_small_and_has_the_demo_geometry():
    size = sum(p.stat().st_size for p in ASSETS.iterdir())
    assert size < 20 * 2**20
    config = TalkerConfig.from_state_dict(read_safetensors(ASSETS / WEIGHTS_NAME))
    assert config == demo_config()


def test_lip_sync_of_the_committed_model_stays_above_0_5(bundle):
    training = bundle.meta["training"]
    sentences = held_out_texts(3, seed=7, exclude=set(corpus_texts(training["clips"], training["seed"])))
    results = [evaluate_text(bundle, text, seed=i, max_seconds=6.0) for i, text in enumerate(sentences)]
    for result in results:
        assert result.seconds >= 1.0
    assert statistics.mean(r.lip_sync for r in results) > 0.5, [(r.text, r.lip_sync) for r in results]
