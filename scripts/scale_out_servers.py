"""Headless ComfyUI servers on loopback ports for scripts/scale_out_check.py (a test tool, not part of the pack).

Each server gets its own base folder (custom_nodes, input, output, temp, user) under one run folder, the pack
linked into its custom_nodes, optional extra node packs copied in, and an extra_model_paths.yaml that points the
talker_t2av folder at a shared model folder, as a render farm mounts one model volume on every machine.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

from api_client_example import open_events


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unpack_node_pack(source: str, destination: str) -> None:
    """Copy a node pack from a checkout folder, or from a bare git directory (its HEAD, via git archive)."""
    if os.path.isdir(os.path.join(source, "objects")) and os.path.isfile(os.path.join(source, "HEAD")):
        tar = subprocess.run(["git", f"--git-dir={source}", "archive", "HEAD"], check=True, capture_output=True).stdout
        os.makedirs(destination)
        with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
            archive.extractall(destination, filter="data")
    else:
        shutil.copytree(source, destination, ignore=shutil.ignore_patterns(".git", "__pycache__"))


class ComfyServer:
    """One ComfyUI process. ``env`` adds environment variables (thread counts, MKL settings, ...)."""

    def __init__(self, name: str, comfyui: str, python: str, run_dir: str, pack: str, models: str | None,
                 env: dict[str, str] | None = None, node_packs: dict[str, str] | None = None):
        self.name, self.comfyui, self.python, self.env = name, comfyui, python, env or {}
        self.base = os.path.join(run_dir, name)
        for folder in ("custom_nodes", "input", "output", "temp", "user"):
            os.makedirs(os.path.join(self.base, folder), exist_ok=True)
        os.symlink(os.path.abspath(pack), os.path.join(self.base, "custom_nodes", "talker_t2av"))
        for folder, source in (node_packs or {}).items():
            unpack_node_pack(source, os.path.join(self.base, "custom_nodes", folder))
        self.yaml = os.path.join(self.base, "extra_model_paths.yaml")
        with open(self.yaml, "w") as f:  # the shared model volume: only the pack's folder is listed
            f.write(f"shared_volume:\n  base_path: {os.path.abspath(models or os.path.join(run_dir, 'models'))}\n"
                    "  talker_t2av: talker_t2av/\n")
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.proc = None

    def custom_node_folder(self, name: str) -> str:
        return os.path.join(self.base, "custom_nodes", name)

    def start(self) -> "ComfyServer":
        self.log_path = os.path.join(self.base, "server.log")
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [self.python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
             "--base-directory", self.base, "--extra-model-paths-config", self.yaml,
             "--database-url", f"sqlite:///{self.base}/user/comfyui.db"],
            cwd=self.comfyui, env=dict(os.environ, **self.env), stdout=self._log, stderr=subprocess.STDOUT)
        return self

    def wait_ready(self, seconds: float = 180) -> None:
        deadline = time.time() + seconds
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited while starting; see {self.log_path}")
            try:
                self.get("/system_stats", timeout=2)
                return
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"{self.name} did not answer in {seconds:.0f} s; see {self.log_path}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            self._log.close()

    # ------------------------------------------------------------------ HTTP

    def request(self, path: str, body=None, timeout: float = 60, raw: bytes | None = None,
                content_type: str = "application/json") -> bytes:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(f"http://{self.address}{path}", data, {"Content-Type": content_type})
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.read()

    def get(self, path: str, timeout: float = 60):
        return json.loads(self.request(path, timeout=timeout) or b"null")

    def post(self, path: str, body, timeout: float = 60):
        try:
            return json.loads(self.request(path, body, timeout=timeout) or b"null")
        except urllib.error.HTTPError as error:
            raise RuntimeError(f"{self.name} {path}: {error.code} {error.read()[:3000]!r}") from None

    def upload(self, name: str, data: bytes) -> None:
        """Put an input file in the server's input folder through /upload/image, as API workers do (any file
        type is accepted there, a voice recording too)."""
        boundary = uuid.uuid4().hex
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{name}\"\r\n"
                f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + \
               f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"overwrite\"\r\n\r\ntrue\r\n" \
               f"--{boundary}--\r\n".encode()
        self.request("/upload/image", raw=body, content_type=f"multipart/form-data; boundary={boundary}")

    def view(self, file: dict) -> bytes:
        query = urllib.parse.urlencode({k: file[k] for k in ("filename", "subfolder", "type")})
        return self.request(f"/view?{query}")

    # ------------------------------------------------------------------ prompts

    def run(self, prompt: dict, timeout: float = 900, queue_path: str = "/prompt", extra: dict | None = None) -> dict:
        """Queue a prompt, wait for its end on /ws, return its /history entry."""
        client_id = str(uuid.uuid4())
        next_event = open_events(self.address, client_id)
        answer = self.post(queue_path, {"prompt": prompt, "client_id": client_id, **(extra or {})})
        prompt_id = answer["prompt_id"]
        deadline = time.time() + timeout
        while time.time() < deadline:
            event = next_event()
            data = event.get("data", {})
            if data.get("prompt_id") == prompt_id and (
                    event["type"] in ("execution_success", "execution_error", "execution_interrupted")
                    or (event["type"] == "executing" and data.get("node") is None)):
                break
        return self.history(prompt_id)

    def history(self, prompt_id: str, wait: float = 10) -> dict:
        deadline = time.time() + wait
        while True:
            entry = self.get(f"/history/{prompt_id}").get(prompt_id)
            if (entry and "status" in entry) or time.time() > deadline:
                return entry or {}
            time.sleep(0.2)

    def queue(self) -> tuple[list[str], list[str]]:
        """Prompt ids (running, pending) in this server's queue."""
        state = self.get("/queue")
        return [item[1] for item in state["queue_running"]], [item[1] for item in state["queue_pending"]]


def error_text(entry: dict) -> str:
    for kind, message in entry.get("status", {}).get("messages", []):
        if kind == "execution_error":
            return f"{message.get('node_type')}: {message.get('exception_message', '')[:400]}"
    return ""


def saved_files(entry: dict, extension: str) -> list[dict]:
    """The files of a history entry's outputs that end in ``extension``, as API workers find them ("images")."""
    return [f for output in entry.get("outputs", {}).values() for f in output.get("images", [])
            if f["filename"].endswith(extension) and f.get("type") == "output"]
