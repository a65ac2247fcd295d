"""Render-farm check: the pack on two real headless ComfyUI servers on loopback. Not run by pytest.

It needs ComfyUI itself (its source folder and a Python with its requirements and the pack's) and a copy of
ComfyUI-Distributed (a checkout, or a bare git directory whose HEAD is used), which it copies into a temporary
run folder; nothing is installed anywhere else. Example, with the test host of ../shared/tools/comfy_host:

    PYTHONPATH=/tmp/comfy_host/shims /tmp/comfy_host/venv/bin/python scripts/scale_out_check.py \\
        --comfyui /tmp/comfy_host/src --distributed PATH/TO/ComfyUI-Distributed [--models MODELS_DIR]

Server A is the Distributed master, server B the worker; --threads sets their torch thread counts (a farm of
alike machines: equal counts). With unequal counts CPU rounding differs (see the README): MKL_CBWR=AVX2,STRICT
(--mkl-cbwr) keeps the generator and the demo identical, not the released decoders' convolutions. It checks:
  (a) the same API workflow and seed on both servers gives the same bytes (B runs other prompts first), also
      the README's standard-library client example, and with --models the released layout with input media
      uploaded through /upload/image;
  (b) a ComfyUI-Distributed fan-out of the demo workflow (master + one worker, Distributed Seed): the master
      collects one clip per seed, each identical to that seed run on its own, the clips distinct;
  (c) 20 prompts queued on server A while a second client cancels six (/interrupt, /queue delete): every
      prompt finished with a valid mp4 of its own, or was cancelled as asked.
It prints a table and exits with 1 if a check fails.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import wave

import av
import numpy as np
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from api_client_example import run as client_example  # noqa: E402
from scale_out_servers import ComfyServer, error_text, saved_files  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(REPO, "workflows", "api", "Talker-T2AV - try the demo (no download).json")
RELEASED = os.path.join(REPO, "workflows", "api", "Talker-T2AV - text to talking video.json")
SAVE_NODES = ("TalkerT2AVSaveVideo", "TalkerT2AVRenderSave")  # the nodes that write the mp4
SEED = 20260707
ROWS: list[tuple[str, str, bool, str]] = []


def row(check: str, observed: str, ok: bool, verdict: str = "") -> None:
    verdict = verdict or ("pass" if ok else "FAIL")
    ROWS.append((check, observed, ok, verdict))
    print(f"[{verdict}] {check}: {observed}", flush=True)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


# ---------------------------------------------------------------------- workflows


def load(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def demo(seed: int, prefix: str, frames: bool = True, text: str | None = None) -> dict:
    """The demo template with a seed, its own output names and, with ``frames``, its frames as PNG (lossless)."""
    prompt = load(DEMO)
    prompt["11"]["inputs"]["seed"] = seed
    prompt["15"]["inputs"]["filename_prefix"] = prefix
    if text:
        prompt["5"]["inputs"]["text"] = text
    if frames:
        prompt["40"] = {"class_type": "SaveImage", "inputs": {"images": ["13", 0], "filename_prefix": prefix + "_frame"}}
    return prompt


def other_workflow(seed: int) -> dict:
    """Something else to run in between: other text, a core ancestral sampler, the 16-bit demo model."""
    prompt = demo(seed, "a/other", frames=False, text="Another line, read by the same voice.")
    prompt["8"] = {"class_type": "TalkerT2AVSolverFromSampler", "inputs": {"sampler": ["41", 0]}}
    prompt["41"] = {"class_type": "KSamplerSelect", "inputs": {"sampler_name": "euler_ancestral"}}
    prompt["1"]["inputs"]["precision"] = "bf16"
    return prompt


def fan_out(seed: int) -> dict:
    """The demo with ComfyUI-Distributed: a Distributed Seed (+1 per worker) drives the sampler, a Distributed
    Collector gathers the decoded frames (IMAGE) and speech (AUDIO) of every participant, master first."""
    prompt = demo(seed, "fanout/all", frames=False)
    prompt["50"] = {"class_type": "DistributedSeed", "inputs": {"seed": seed}}
    prompt["11"]["inputs"]["seed"] = ["50", 0]
    prompt["51"] = {"class_type": "DistributedCollector",
                    "inputs": {"images": ["13", 0], "audio": ["12", 0], "load_balance": False}}
    prompt["14"]["inputs"].update(images=["51", 0], audio=["51", 1])
    prompt["52"] = {"class_type": "SaveImage", "inputs": {"images": ["51", 0], "filename_prefix": "fanout/frame"}}
    return prompt


# ---------------------------------------------------------------------- outputs


def mp4_report(data: bytes) -> tuple[int, float, bool]:
    """(decoded frames, fps, speech as long as the frames to the frame) of an mp4; raises if it is not one."""
    with av.open(io.BytesIO(data)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        frames = sum(1 for _ in container.decode(video))
        seconds = float(audio.duration * audio.time_base)
        return frames, float(video.average_rate), round(seconds * 25) == frames


def clip(server: ComfyServer, entry: dict) -> tuple[bytes, list[np.ndarray]]:
    """The mp4 bytes and the PNG frames (in order) a history entry reports, fetched through /view."""
    mp4 = [server.view(f) for f in saved_files(entry, ".mp4")]
    pngs = sorted(saved_files(entry, ".png"), key=lambda f: f["filename"])
    return (mp4[0] if mp4 else b""), [np.asarray(Image.open(io.BytesIO(server.view(f)))) for f in pngs]


def same_frames(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) > 0 and all(np.array_equal(x, y) for x, y in zip(a, b))


def photo_png(height: int, width: int, left: int, top: int, side: int, seed: int = 0) -> bytes:
    """A PNG photo with the demo's drawn face (a square of ``side`` at left, top) on a texture, which Face
    Crop's built-in detector finds."""
    sys.path.insert(0, REPO)
    from t2av_core.demo.portrait import portrait
    png = io.BytesIO()
    Image.fromarray(portrait(height, width, left, top, side, seed=seed)).save(png, format="PNG")
    return png.getvalue()


def sample_inputs() -> dict[str, bytes]:
    """A photo with a face off-centre and a stereo 22.05 kHz voice-like tone, for the released-layout workflow."""
    t = np.arange(int(1.3 * 22050)) / 22050
    tone = 0.3 * np.sin(2 * np.pi * (140 + 60 * np.sin(3 * t)) * t) * (0.6 + 0.4 * np.sin(8 * np.pi * t))
    wav = io.BytesIO()
    with wave.open(wav, "wb") as f:
        f.setnchannels(2), f.setsampwidth(2), f.setframerate(22050)
        f.writeframes((np.stack([tone, 0.8 * tone], 1) * 32767).astype("<i2").tobytes())
    return {"talker_face.png": photo_png(135, 181, 70, 15, 100), "talker_voice.wav": wav.getvalue()}


# ---------------------------------------------------------------------- (a) the same workflow on two servers


def same_results(a: ComfyServer, b: ComfyServer, models: str | None, threads: tuple[int, int]) -> dict:
    first = a.run(demo(SEED, "a/clip"))
    b_next = b.run(demo(SEED + 1, "a/next"))  # server B runs other prompts first
    b_other = b.run(other_workflow(SEED + 2))
    second = b.run(demo(SEED, "a/clip"))
    for name, entry in (("A", first), ("B", second), ("B next", b_next), ("B other", b_other)):
        if entry.get("status", {}).get("status_str") != "success":
            raise RuntimeError(f"demo workflow failed on {name}: {error_text(entry)}")
    mp4_a, frames_a = clip(a, first)
    mp4_b, frames_b = clip(b, second)
    frames, fps, synced = mp4_report(mp4_a)
    counts = [f"{n} thread{'s' if n > 1 else ''}" for n in threads]
    row(f"(a) demo workflow, same seed, server A ({counts[0]}) vs B ({counts[1]}, after 2 other prompts)",
        f"mp4 {sha(mp4_a)} vs {sha(mp4_b)}; {len(frames_a)} vs {len(frames_b)} PNG frames, "
        f"{'identical' if same_frames(frames_a, frames_b) else 'DIFFERENT'}; {frames} frames at {fps:g} fps, "
        f"speech {'in sync' if synced else 'OUT OF SYNC'}",
        mp4_a == mp4_b and same_frames(frames_a, frames_b) and synced and fps == 25)

    path = os.path.join(os.path.dirname(a.base), "client_example.mp4")  # inside the run folder
    client_example(a.address, load(DEMO), load(DEMO)["5"]["inputs"]["text"], SEED, path)
    with open(path, "rb") as f:
        fetched = f.read()
    row("(a) README client example (standard library: /prompt, /ws, /history, /view) on server A",
        f"mp4 {sha(fetched)}, {'the same bytes as' if fetched == mp4_a else 'DIFFERENT from'} run (a)",
        fetched == mp4_a)

    if models:
        runs = []
        for server in (a, b):
            for name, data in sample_inputs().items():
                server.upload(name, data)  # only the workflow and its input media reach the server
            prompt = load(RELEASED)
            prompt["13"]["inputs"].update(seed=SEED, max_seconds=0.64)
            save = next(node for node in prompt.values() if node["class_type"] in SAVE_NODES)
            save["inputs"]["filename_prefix"] = "a/released"
            entry = server.run(prompt)
            runs.append(clip(server, entry)[0] if entry.get("status", {}).get("status_str") == "success" else b"")
        ok = runs[0] == runs[1] != b""
        expected = not ok and threads[0] != threads[1] and runs[0] != b"" != runs[1]  # see the README
        row("(a) released layout (tiny models via extra_model_paths.yaml), uploaded face and voice, A vs B",
            f"mp4 {sha(runs[0])} vs {sha(runs[1])}" + ("" if runs[0] and runs[1] else f" {error_text(entry)}"),
            ok or expected, "differs, as expected with unequal thread counts" if expected else "")
    return {"master": frames_a, "worker": clip(b, b_next)[1]}


# ---------------------------------------------------------------------- (b) ComfyUI-Distributed fan-out


def fan_out_check(a: ComfyServer, expected: dict) -> None:
    entry = a.run(fan_out(SEED), queue_path="/distributed/queue",
                  extra={"enabled_worker_ids": ["1"], "delegate_master": False})
    if entry.get("status", {}).get("status_str") != "success":
        row("(b) Distributed fan-out", f"failed: {error_text(entry) or entry.get('status')}", False)
        return
    mp4, collected = clip(a, entry)
    n_master, n_worker = len(expected["master"]), len(expected["worker"])
    master_ok = same_frames(collected[:n_master], expected["master"])
    worker_ok = same_frames(collected[n_master:], expected["worker"])
    distinct = not same_frames(expected["master"][:1], expected["worker"][:1])
    frames, _, synced = mp4_report(mp4)
    row("(b) Distributed fan-out of the demo: master seed S + worker seed S+1, collected on the master",
        f"{len(collected)} frames = {n_master} (seed {SEED}, {'=' if master_ok else '!='} its own run) + "
        f"{n_worker} (seed {SEED + 1}, from the worker, {'=' if worker_ok else '!='} its own run); clips "
        f"{'distinct' if distinct else 'THE SAME'}; joined mp4 {frames} frames, speech "
        f"{'in sync' if synced else 'OUT OF SYNC'}",
        master_ok and worker_ok and distinct and len(collected) == n_master + n_worker == frames and synced)


# ---------------------------------------------------------------------- (c) a burst with cancels


def canceller(server: ComfyServer, ids: list[str], interrupt: set[int], delete: set[int], log: dict) -> None:
    """The second client: deletes some pending prompts at once, interrupts others once they have run 0.5 s."""
    running, pending = server.queue()
    for i in sorted(delete):
        log[i] = "pending" if ids[i] in pending else "not pending"
        server.post("/queue", {"delete": [ids[i]]})
    seen: dict[int, float] = {}
    deadline = time.time() + 1800
    while interrupt - set(log) and time.time() < deadline:
        running, pending = server.queue()
        for i in interrupt - set(log):
            if ids[i] in running:
                seen.setdefault(i, time.time())
                if time.time() - seen[i] > 0.5:
                    server.post("/interrupt", {"prompt_id": ids[i]})
                    log[i] = "running"
            elif ids[i] not in pending:
                log[i] = "finished before the cancel"
        time.sleep(0.1)


def burst(server: ComfyServer, count: int = 20) -> None:
    interrupt, delete = {2, 9, 15}, {5, 12, 18}
    client_id = "burst-client"
    ids = [server.post("/prompt", {"prompt": demo(100 + i % 10, f"burst/p{i:02d}", frames=False),
                                   "client_id": client_id})["prompt_id"] for i in range(count)]
    log: dict[int, str] = {}
    second_client = threading.Thread(target=canceller, args=(server, ids, interrupt, delete, log))
    second_client.start()
    second_client.join()
    while any(server.queue()):
        time.sleep(0.5)
    finished, stopped, removed, lost, mp4s = 0, 0, 0, [], {}
    for i, prompt_id in enumerate(ids):
        entry = server.history(prompt_id, wait=0 if i in delete else 10)
        status = entry.get("status", {}).get("status_str")
        kinds = [kind for kind, _ in entry.get("status", {}).get("messages", [])]
        if status == "success":
            files = saved_files(entry, ".mp4")
            data = server.view(files[0]) if len(files) == 1 else b""
            frames, fps, synced = mp4_report(data) if data else (0, 0, False)
            reported = entry["outputs"]["15"]["talker_t2av"][0]
            own = files and files[0]["filename"].startswith(f"p{i:02d}_")
            if data and own and synced and fps == 25 and frames == reported:
                finished += 1
                mp4s[i] = data
            else:
                lost.append(f"#{i} bad file")
        elif i in interrupt and "execution_interrupted" in kinds and log.get(i) == "running":
            stopped += 1
        elif i in delete and not entry and log.get(i) == "pending":
            removed += 1
        else:
            lost.append(f"#{i} {status or 'missing'} ({log.get(i, 'not cancelled')}) {error_text(entry)}")
    twins = [(i, i + 10) for i in range(10) if i in mp4s and i + 10 in mp4s]
    twins_same = all(mp4s[i] == mp4s[j] for i, j in twins)
    distinct = len({sha(mp4s[i]) for i in mp4s}) == len({100 + i % 10 for i in mp4s})
    on_disk = sorted(os.listdir(os.path.join(server.base, "output", "burst")))
    reported = sorted(saved_files(server.history(ids[i]), ".mp4")[0]["filename"] for i in mp4s)
    row(f"(c) {count} prompts queued on one server, a second client cancels 3 running (/interrupt) and "
        "3 pending (/queue delete)",
        f"{finished} finished with a valid mp4 of their own + {stopped} interrupted while running + {removed} "
        f"removed while pending = {finished + stopped + removed}/{count}; lost or mixed up: {lost or 'none'}; "
        f"{len(twins)} same-seed pairs "
        f"{'byte-identical' if twins_same else 'DIFFERENT'}, other seeds {'distinct' if distinct else 'NOT distinct'}; "
        f"output folder {'holds exactly' if on_disk == reported else 'DIFFERS from'} the reported files",
        finished + stopped + removed == count and not lost and twins_same and distinct and on_disk == reported)


# ---------------------------------------------------------------------- main


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comfyui", required=True, help="ComfyUI's source folder (holds main.py)")
    parser.add_argument("--python", default=sys.executable, help="the Python that runs ComfyUI (default: this one)")
    parser.add_argument("--distributed", required=True, help="ComfyUI-Distributed: a checkout or a bare git dir")
    parser.add_argument("--models", help="a models folder holding talker_t2av/ in the released layout (optional)")
    parser.add_argument("--threads", default="1,1", help="torch threads of server A and B (default: 1,1)")
    parser.add_argument("--mkl-cbwr", default="", help="MKL_CBWR for both servers, e.g. AVX2,STRICT (default: unset)")
    parser.add_argument("--keep", action="store_true", help="keep the run folder (logs, outputs)")
    args = parser.parse_args()

    threads = tuple(int(n) for n in args.threads.split(","))
    run_dir = tempfile.mkdtemp(prefix="t2av_scale_out_")
    common = {"MKL_CBWR": args.mkl_cbwr} if args.mkl_cbwr else {}
    distributed = {"ComfyUI-Distributed": args.distributed}
    a = ComfyServer("server_a", args.comfyui, args.python, run_dir, REPO, args.models,
                    dict(common, OMP_NUM_THREADS=str(threads[0])), distributed)
    b = ComfyServer("server_b", args.comfyui, args.python, run_dir, REPO, args.models,
                    dict(common, OMP_NUM_THREADS=str(threads[1]), COMFYUI_IS_WORKER="1"), distributed)
    config = {"master": {"host": "127.0.0.1"}, "settings": {"auto_launch_workers": False},
              "workers": [{"id": "1", "name": "server B", "host": "127.0.0.1", "port": b.port, "type": "local",
                           "enabled": True}]}
    with open(os.path.join(a.custom_node_folder("ComfyUI-Distributed"), "gpu_config.json"), "w") as f:
        json.dump(config, f)
    t0 = time.time()
    try:
        for server in (a.start(), b.start()):
            server.wait_ready()
            info = server.get("/object_info", timeout=300)
            missing = {"TalkerT2AVSampler", "TalkerT2AVSaveVideo", "DistributedCollector", "DistributedSeed"} - set(info)
            if missing:
                raise RuntimeError(f"{server.name} lacks {sorted(missing)}; see {server.log_path}")
        expected = same_results(a, b, args.models, threads)
        fan_out_check(a, expected)
        burst(a)
    except Exception as error:  # reported in the table, the servers are still stopped
        row("run", f"{type(error).__name__}: {error}", False)
    finally:
        a.stop()
        b.stop()
    print(f"\nTalker-T2AV scale-out check: ComfyUI at {args.comfyui}, 2 servers on loopback, "
          f"{threads[0]} and {threads[1]} torch threads, MKL_CBWR={args.mkl_cbwr or 'unset'}, {time.time() - t0:.0f} s\n")
    print("| check | observed | result |\n|---|---|---|")
    for check, observed, _, verdict in ROWS:
        print(f"| {check} | {observed} | {verdict} |")
    print(f"\nrun folder: {run_dir}" if args.keep else "")
    if not args.keep:
        shutil.rmtree(run_dir, ignore_errors=True)
    return 0 if ROWS and all(ok for _, _, ok, _ in ROWS) else 1


if __name__ == "__main__":
    sys.exit(main())
