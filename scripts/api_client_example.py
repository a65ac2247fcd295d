"""Queue a Talker-T2AV workflow on a ComfyUI server and fetch the mp4 (standard library only).

    python scripts/api_client_example.py --server 127.0.0.1:8188 --text "Good morning." --seed 7 --out clip.mp4

The workflow is an API-format file ("Export (API)" in ComfyUI); the text and seed go into its Text Encode and
Joint Sampler nodes. The README's "On a render farm or behind an API" section shows its main part.
"""
import argparse
import base64
import json
import os
import socket
import urllib.parse
import urllib.request
import uuid


def call(server, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"http://{server}{path}", data, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.read()


def open_events(server, client_id):
    """Connect to /ws and return a function that reads its next JSON event (binary preview frames are skipped)."""
    host, port = server.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(f"GET /ws?clientId={client_id} HTTP/1.1\r\nHost: {server}\r\nUpgrade: websocket\r\n"
                 f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    stream = sock.makefile("rb")
    while stream.readline() not in (b"\r\n", b""):  # the "101 Switching Protocols" answer
        pass

    def next_event():
        while True:
            head = stream.read(2)
            if len(head) < 2:
                raise ConnectionError("the server closed the websocket")
            size = head[1] & 0x7F
            if size >= 126:
                size = int.from_bytes(stream.read(2 if size == 126 else 8), "big")
            payload = stream.read(size)
            if head[0] & 0x0F == 1:  # a text frame
                return json.loads(payload)
    return next_event


def run(server, workflow, text, seed, out):
    for node in workflow.values():  # set the text and the seed wherever the workflow has them
        if node["class_type"] == "TalkerT2AVTextEncode":
            node["inputs"]["text"] = text
        if node["class_type"] == "TalkerT2AVSampler":
            node["inputs"]["seed"] = seed
    client_id = str(uuid.uuid4())
    next_event = open_events(server, client_id)  # listen before queueing, so no event is missed
    prompt_id = json.loads(call(server, "/prompt", {"prompt": workflow, "client_id": client_id}))["prompt_id"]
    while True:
        event = next_event()
        data = event.get("data", {})
        if data.get("prompt_id") != prompt_id:
            continue
        if event["type"] in ("execution_error", "execution_interrupted"):
            raise RuntimeError(f"{event['type']}: {data.get('exception_message', '')}")
        if event["type"] == "executing" and data.get("node") is None:  # done, and in /history
            break
    outputs = json.loads(call(server, f"/history/{prompt_id}"))[prompt_id]["outputs"]
    for output in outputs.values():
        for file in output.get("images", []):  # Save Video lists its mp4 here, as core Save Video does
            if file["filename"].endswith(".mp4") and file["type"] == "output":
                with open(out, "wb") as f:
                    f.write(call(server, "/view?" + urllib.parse.urlencode(file)))
                return file
    raise RuntimeError("the workflow saved no mp4")


if __name__ == "__main__":
    DEMO = os.path.join(os.path.dirname(__file__), "..", "workflows", "api",
                        "Talker-T2AV - try the demo (no download).json")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="127.0.0.1:8188")
    parser.add_argument("--workflow", default=DEMO, help="an API-format workflow with a Talker-T2AV Save Video")
    parser.add_argument("--text", default="Hello, the teacher reads a new book.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="clip.mp4")
    args = parser.parse_args()
    with open(args.workflow) as f:
        saved = run(args.server, json.load(f), args.text, args.seed, args.out)
    print(f"{args.out}: {saved['filename']} from the server's output folder")
