"""Peak memory of a real ComfyUI server rendering a long clip into a 1920x1080 photo: Render and Save (streamed)
against the modular Video Decode -> Paste Back -> Combine Video -> Save Video chain. Not run by pytest.

    PYTHONPATH=/tmp/comfy_host/shims /tmp/comfy_host/venv/bin/python scripts/render_memory_check.py \\
        --comfyui /tmp/comfy_host/src --models MODELS_DIR [--streamed 10 40] [--chain 10 20]

MODELS_DIR holds talker_t2av/ in the released layout (the tiny fixture models do: the figures are about the
frames, whose size does not depend on the models). Each case runs the long-script template in a fresh server
(Linux: its peak resident memory is read from /proc) with the photo and a voice uploaded as API workers do.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from scale_out_check import photo_png, sample_inputs  # noqa: E402
from scale_out_servers import ComfyServer, error_text  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATE = os.path.join(REPO, "workflows", "api", "Talker-T2AV - read a long script.json")
SAMPLER, RENDER_SAVE = "20", "23"  # node ids in that template
PATHS = {"streamed": "Render and Save (streamed)", "chain": "Video Decode -> Paste Back -> Combine -> Save Video"}


def as_chain(prompt: dict) -> dict:
    """The template with its Render and Save replaced by the modular nodes."""
    prompt = copy.deepcopy(prompt)
    streamed = prompt.pop(RENDER_SAVE)["inputs"]
    prompt["c1"] = {"class_type": "TalkerT2AVVideoDecode", "inputs": {
        "video_model": streamed["video_model"], "face": streamed["face"], "av_latent": streamed["av_latent"],
        "batch_size": streamed["batch_size"]}}
    prompt["c2"] = {"class_type": "TalkerT2AVPasteBack", "inputs": {
        "images": ["c1", 0], "source": streamed["source"], "face_crop": streamed["face_crop"],
        "feather": streamed["feather"], "colour_match": streamed["colour_match"]}}
    prompt["c3"] = {"class_type": "TalkerT2AVMux", "inputs": {"images": ["c2", 0], "fps": ["c1", 1],
                                                             "audio": streamed["audio"]}}
    prompt["c4"] = {"class_type": "TalkerT2AVSaveVideo", "inputs": {"video": ["c3", 0],
                                                                   "filename_prefix": "talker_t2av/chain"}}
    return prompt


def peak_rss_mib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) // 1024 for line in status if line.startswith("VmHWM"))


def one_case(args, label: str, seconds: float, run_dir: str) -> str:
    server = ComfyServer(f"{label}_{seconds:g}", args.comfyui, args.python, run_dir, REPO, args.models).start()
    try:
        server.wait_ready()
        server.upload("talker_face.png", photo_png(1080, 1920, 1150, 240, 520, seed=1))
        server.upload("talker_voice.wav", sample_inputs()["talker_voice.wav"])
        prompt = json.load(open(TEMPLATE))
        prompt[SAMPLER]["inputs"]["max_seconds"] = seconds
        prompt = as_chain(prompt) if label == "chain" else prompt
        idle = peak_rss_mib(server.proc.pid)
        entry = server.run(prompt, timeout=3600)
        peak = peak_rss_mib(server.proc.pid)
        status = entry.get("status", {}).get("status_str", "no answer")
        problem = "" if status == "success" else f" ({error_text(entry)[:200]})"
        path = PATHS[label]
        return f"| {path} | {seconds:g} s | {status}{problem} | {idle:,} MiB | {peak:,} MiB |"
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--comfyui", required=True, help="ComfyUI's source folder (holds main.py)")
    parser.add_argument("--python", default=sys.executable, help="the Python that runs ComfyUI")
    parser.add_argument("--models", required=True, help="a folder holding talker_t2av/ in the released layout")
    parser.add_argument("--streamed", type=float, nargs="*", default=[10, 40], help="clip lengths, Render and Save")
    parser.add_argument("--chain", type=float, nargs="*", default=[10, 20], help="clip lengths, modular chain")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="t2av_memory_") as run_dir:
        for label, lengths in (("streamed", args.streamed), ("chain", args.chain)):
            for seconds in lengths:
                rows.append(one_case(args, label, seconds, run_dir))
                print(rows[-1], flush=True)
    print("\n1920x1080 photo, long-script template\n\n| path | clip | status | server idle | server peak RSS |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
