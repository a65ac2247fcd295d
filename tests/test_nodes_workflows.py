"""The shipped workflows: every API-format workflow runs end to end through the nodes on the tiny models and
writes a synchronised mp4; the UI-format twins in workflows/ (the template browser) match them."""

import json
import sys
from collections import Counter
from pathlib import Path

import av
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "comfy_stub"))

import folder_paths  # noqa: E402  (the stand-in)
import pack_harness as H  # noqa: E402

WORKFLOWS = H.REPO / "workflows"
API = sorted((WORKFLOWS / "api").glob("*.json"))
UI = sorted(WORKFLOWS.glob("*.json"))
# The template browser shows a pack's file names as the cards' titles, so they are written to be read.
MODES = {"text to talking video", "talking video from your audio", "dub a video", "continue a clip",
         "read a long script", "try the demo (no download)"}
DEMO = "bundled demo (no download)"


def test_every_mode_ships_as_a_ui_template_with_an_api_twin():
    assert {p.stem.removeprefix("Talker-T2AV - ") for p in API} == MODES
    assert [p.name for p in UI] == [p.name for p in API]
    for path in UI:
        data = json.loads(path.read_text())
        assert "nodes" in data and "links" in data, f"{path.name} must be UI format (the template browser lists it)"
        thumbnail = path.with_suffix(".jpg")  # the browser's card picture
        assert thumbnail.is_file(), f"{thumbnail.name} is missing"
        with av.open(str(thumbnail)) as image:
            frame = next(image.decode(video=0))
            assert frame.width >= 256 and frame.height >= 160


def _fast(prompt: dict) -> dict:
    """The shipped settings, shortened so the tiny models render a few frames on a CPU."""
    for node in prompt.values():
        if node["class_type"] in ("TalkerT2AVSampler", "TalkerT2AVLongFormSampler"):
            node["inputs"]["max_seconds"] = 0.32
            node["inputs"]["prefix_seconds"] = min(node["inputs"]["prefix_seconds"], 0.16)
    return prompt


def _streams(path: Path) -> tuple[float, int, float]:
    """(video fps, decoded frame count, audio seconds) of an mp4. The audio length is the track's duration:
    decoding also returns the AAC encoder's padding of the last 1024-sample frame."""
    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        fps = float(video.average_rate)
        frames = sum(1 for _ in container.decode(video))
        return fps, frames, float(audio.duration * audio.time_base)


@pytest.mark.slow
@pytest.mark.parametrize("path", API, ids=[p.stem for p in API])
def test_api_workflow_runs_end_to_end_and_writes_a_synchronised_mp4(parity_dir, path):
    env = H.environment(parity_dir)
    prompt = _fast(H.load_api_workflow(path))
    done = H.run_workflow(prompt, env.nodes)
    save_id = next(i for i, n in prompt.items() if n["class_type"] in ("TalkerT2AVSaveVideo", "TalkerT2AVRenderSave"))
    info = H.saved_clip(done[save_id].ui)
    assert info.has_audio and info.fps == 25.0
    mp4 = info.path
    fps, frames, audio_seconds = _streams(mp4)
    assert fps == 25 and frames == info.frames >= 4
    assert round(audio_seconds * 25) == frames  # audio as long as the video, to the frame
    sampler_id = next(i for i, n in prompt.items()
                      if n["class_type"] in ("TalkerT2AVSampler", "TalkerT2AVLongFormSampler"))
    av_latent = done[sampler_id].args[0]
    av_latent = av_latent[0] if isinstance(av_latent, list) else av_latent  # the Joint Sampler's list of clips
    assert av_latent.audio.shape[0] == frames  # every latent frame became one video frame


def _executable(ui: dict) -> tuple[Counter, set]:
    """Node types and type-labelled links of a UI graph, without Note nodes."""
    types = {n["id"]: n["type"] for n in ui["nodes"] if n["type"] not in ("Note", "MarkdownNote")}
    links = {(types[a], ia, types[b], t) for _, a, ia, b, _, t in ui["links"]}
    return Counter(types.values()), links


def _api_graph(api: dict) -> tuple[Counter, set]:
    links = set()
    for node in api.values():
        for value in node["inputs"].values():
            if isinstance(value, list):
                links.add((api[value[0]]["class_type"], value[1], node["class_type"]))
    return Counter(n["class_type"] for n in api.values()), links


@pytest.mark.parametrize("name", [p.name for p in UI])
def test_ui_workflow_matches_its_api_twin_and_documents_models(name):
    ui = json.loads((WORKFLOWS / name).read_text())
    api = json.loads((WORKFLOWS / "api" / name).read_text())
    ui_types, ui_links = _executable(ui)
    api_types, api_links = _api_graph(api)
    assert ui_types == api_types
    assert {(a, ia, b) for a, ia, b, _ in ui_links} == api_links
    notes = [n for n in ui["nodes"] if n["type"] == "Note"]
    assert len(notes) >= 2 and any("models/talker_t2av/" in n["widgets_values"][0] for n in notes)
    loaders = [n for n in ui["nodes"] if n["type"].endswith("Loader") and n["type"].startswith("TalkerT2AV")]
    assert len(loaders) == 4
    for node in loaders:
        if node["widgets_values"][0] == DEMO:  # shipped with the pack: nothing to download
            assert "models" not in node["properties"]
            continue
        models = node["properties"]["models"]
        assert models[0]["name"] == node["widgets_values"][0]  # the file widget, then the tokenizer if any
        assert all(m["directory"] == "talker_t2av" and m["url"].startswith("https://") for m in models)
        assert {m["name"] for m in models} <= set(node["widgets_values"])
