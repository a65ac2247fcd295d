"""What a render farm relies on, through the nodes (tests/comfy_stub stand-in):

* the outputs that workers collect: Save Video reports its mp4 as core Save Video does (the file under "images",
  which generic API workers fetch from /view), and the decoders give plain core IMAGE and AUDIO, which
  ComfyUI-Distributed's collector joins clip after clip;
* no state between runs: the same workflow run twice in one process gives the same bits, also when other
  workflows ran in between and ComfyUI reused cached node outputs across them;
* importing the pack touches no CUDA and loads no model (serverless platforms snapshot processes at import).

The two-server check with a real ComfyUI is scripts/scale_out_check.py (not part of pytest)."""

import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent / "comfy_stub"))

import folder_paths  # noqa: E402  (the stand-in)
import pack_harness as H  # noqa: E402

DEMO_TEMPLATE = H.REPO / "workflows" / "api" / "Talker-T2AV - try the demo (no download).json"
RELEASED_TEMPLATE = H.REPO / "workflows" / "api" / "Talker-T2AV - text to talking video.json"
SAMPLER, AUDIO, FRAMES, SAVE = "11", "12", "13", "15"  # node ids in the demo template


@pytest.fixture(scope="module")
def env(parity_dir):
    return H.environment(parity_dir)


def demo_prompt(seed: int = 7, text: str | None = None) -> dict:
    prompt = H.load_api_workflow(DEMO_TEMPLATE)
    prompt[SAMPLER]["inputs"].update(seed=seed, max_seconds=1.6)
    if text is not None:
        prompt["5"]["inputs"]["text"] = text
    return prompt


class CachedRunner:
    """Runs API prompts the way one ComfyUI process does: a node whose class, widget values and upstream nodes
    are unchanged since an earlier prompt is not run again, its earlier outputs are handed on (ComfyUI's output
    cache). A node that changed something it was handed would thus change later prompts."""

    def __init__(self, nodes: dict[str, type]):
        self.nodes, self.outputs = nodes, {}

    def run(self, prompt: dict) -> dict[str, object]:
        return H.run_workflow(prompt, self.nodes, cache=self.outputs)


def digest(done: dict) -> dict[str, str]:
    """sha256 of what the demo workflow made: latents, frames, speech and the mp4's bytes."""
    latent = done[SAMPLER].args[0][0]  # the Joint Sampler hands on a list of clips
    tensors = {"audio latents": latent.audio, "motion latents": latent.motion_norm,
               "frames": done[FRAMES].args[0], "speech": done[AUDIO].args[0]["waveform"]}
    sums = {name: hashlib.sha256(t.detach().cpu().contiguous().numpy().tobytes()).hexdigest()
            for name, t in tensors.items()}
    sums["mp4"] = hashlib.sha256(H.saved_clip(done[SAVE].ui).path.read_bytes()).hexdigest()
    return sums


def shake_global_random_state():
    """Other nodes seed and draw from the process-wide generators (core KSampler seeds torch's)."""
    torch.manual_seed(random.randrange(2**31))
    torch.rand(17)
    np.random.seed(random.randrange(2**31))
    random.seed()


# ---------------------------------------------------------------- outputs that workers collect


def test_save_video_reports_its_mp4_where_api_workers_collect_outputs(env):
    done = H.run_workflow(demo_prompt(), env.nodes)
    # ComfyUI keeps a node's UI result as JSON in /history: what an API worker reads
    outputs = json.loads(json.dumps(done[SAVE].ui))
    assert set(outputs) == {"images", "animated", "talker_t2av"}
    assert outputs["animated"] == [True]  # what marks core Save Video's result as a video
    # a generic worker fetches every "images" entry that is not a temp preview through /view
    fetched = [f for f in outputs["images"] if f["type"] != "temp"]
    assert len(fetched) == 1 and fetched[0]["type"] == "output" and fetched[0]["filename"].endswith(".mp4")
    path = Path(folder_paths.get_output_directory()) / fetched[0]["subfolder"] / fetched[0]["filename"]
    frames, fps, seconds, has_audio = outputs["talker_t2av"]
    assert fps == 25.0 and seconds == frames / 25 and has_audio is True
    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert sum(1 for _ in container.decode(video)) == frames == done[SAMPLER].args[0][0].audio.shape[0]
        assert round(float(audio.duration * audio.time_base) * 25) == frames
    # the player's figures are plain values: a collector walking every list finds no second file
    assert not any(isinstance(v, (dict, list)) for v in outputs["talker_t2av"])


def test_decoded_images_and_audio_are_core_types_that_join_clip_after_clip(env):
    """ComfyUI-Distributed's collector puts the workers' IMAGE batches after the master's and their AUDIO
    waveforms one after another: that stays in sync only if each clip's speech lasts exactly its frames."""
    clips = [H.run_workflow(demo_prompt(seed), env.nodes) for seed in (1, 2)]
    images, sounds = [c[FRAMES].args[0] for c in clips], [c[AUDIO].args[0] for c in clips]
    for frames, sound in zip(images, sounds):
        assert frames.dtype == torch.float32 and frames.device.type == "cpu" and frames.is_contiguous()
        assert frames.dim() == 4 and frames.shape[-1] == 3 and 0 <= frames.min() and frames.max() <= 1
        assert set(sound) == {"waveform", "sample_rate"} and isinstance(sound["sample_rate"], int)
        wave = sound["waveform"]
        assert wave.dtype == torch.float32 and wave.dim() == 3 and wave.shape[0] == 1
        assert wave.shape[-1] * 25 == frames.shape[0] * sound["sample_rate"]  # to the sample
    assert not torch.equal(images[0][:1], images[1][:1]) or images[0].shape != images[1].shape
    joined_frames = torch.cat(images)  # same frame size on every worker
    joined_wave = torch.cat([s["waveform"] for s in sounds], dim=-1)
    assert joined_wave.shape[-1] * 25 == joined_frames.shape[0] * sounds[0]["sample_rate"]


# ---------------------------------------------------------------- no state between runs


def test_the_same_workflow_gives_the_same_bits_whatever_ran_before_in_the_process(env, parity_dir):
    from t2av_core.demo.bundle import load_demo

    loaders = H.load_pack().nodes.loaders
    bundle = loaders.demo_bundle()
    weights_before = {k: v.clone() for k, v in bundle.talker.state_dict().items()}
    speaker_before = bundle.default_speaker.clone()

    first = digest(CachedRunner(env.nodes).run(demo_prompt()))  # on its own, nothing cached

    runner = CachedRunner(env.nodes)
    runner.run(demo_prompt(seed=99, text="Another line, for another take."))
    other = demo_prompt(seed=3)  # a core ancestral sampler and the 16-bit demo model
    other["8"] = {"class_type": "TalkerT2AVSolverFromSampler", "inputs": {"sampler": ["20", 0]}}
    other["20"] = {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler_ancestral"}}
    other["1"]["inputs"]["precision"] = "bf16"
    runner.run(other)
    released = H.load_api_workflow(RELEASED_TEMPLATE)  # the released layout, tiny models, other inputs
    released["13"]["inputs"]["max_seconds"] = 0.32
    H.make_inputs(Path(folder_paths.base_path) / "input", voice_seconds=0.6, video_frames=8)
    H.run_workflow(released, env.nodes)
    shake_global_random_state()
    again = runner.run(demo_prompt())  # voice, face and models handed on from the runs above
    assert digest(again) == first

    shake_global_random_state()
    assert digest(CachedRunner(env.nodes).run(demo_prompt())) == first  # nothing cached, after all of that
    assert digest(runner.run(demo_prompt(seed=8))) != first  # the seed still counts

    # the shared demo parts were not changed by any run
    assert all(torch.equal(v, weights_before[k]) for k, v in bundle.talker.state_dict().items())
    assert torch.equal(bundle.default_speaker, speaker_before)
    assert torch.equal(bundle.default_speaker, load_demo().default_speaker)


# ---------------------------------------------------------------- import


def test_importing_the_pack_touches_no_cuda_and_loads_no_model(tmp_path):
    script = f"""
import sys
sys.path.insert(0, {str(H.STUB)!r})
import torch
import pack_harness as H          # the stand-in ComfyUI is imported first, as ComfyUI is
def refuse(*args, **kwargs):
    raise AssertionError("CUDA was touched while the pack was imported")
for name in ("is_available", "device_count", "init", "_lazy_init", "current_device", "synchronize"):
    setattr(torch.cuda, name, refuse)
nodes = H.pack_nodes()            # import, comfy_entrypoint, node list
for node in nodes.values():
    node.define_schema()          # what /object_info asks for
assert H.load_pack().nodes.loaders.demo_bundle.cache_info().currsize == 0, "the demo model was loaded"
assert "t2av_core.demo.bundle" not in sys.modules
print(len(nodes))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=H.REPO,
                            env=dict(os.environ, PYTHONPATH=str(H.REPO), COMFY_STUB_BASE=str(tmp_path)), timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout.split()[-1]) == len(H.pack_nodes())  # every node defined its schema


def test_the_readme_client_example_is_the_code_the_two_server_check_runs():
    readme = (H.REPO / "README.md").read_text()
    section = readme[readme.index("### A Python client"):]
    start = section.index("```python\n") + len("```python\n")
    block = section[start:section.index("```\n", start)]
    for endpoint in ("/prompt", "/ws", "/history", "/view"):
        assert endpoint in block
    assert block in (H.REPO / "scripts" / "api_client_example.py").read_text()
    imports = {line.split()[1].split(".")[0] for line in block.splitlines() if line.startswith(("import ", "from "))}
    assert imports and imports <= set(sys.stdlib_module_names)  # the standard library only
