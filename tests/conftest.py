"""Shared test fixtures: where the golden parity files live.

CI lays the steering repo's ``shared/`` beside the checkout; ``T2AV_PARITY_DIR`` overrides the location.
"""

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[1]
PARITY = Path(os.environ.get("T2AV_PARITY_DIR", REPO.parent / "shared" / "parity"))


def _require(path: Path) -> Path:
    if not path.exists():
        message = f"parity fixtures not found at {path} (set T2AV_PARITY_DIR)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI must never silently skip the parity suite
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def parity_dir() -> Path:
    return _require(PARITY)


def load_cases(folder: Path, stem: str) -> tuple[dict, dict]:
    """(manifest, tensors) of a ``<stem>_cases.json`` / ``<stem>_cases.safetensors`` pair."""
    manifest = json.loads((folder / f"{stem}_cases.json").read_text())
    tensors = load_file(str(folder / f"{stem}_cases.safetensors"))
    return manifest, tensors


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """The fixture models are tiny and latency-bound: extra intra-op threads only contend for the 2 CI cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def unwritable_folder(tmp_path) -> Path:
    """A folder this process cannot create files in: read-only by its mode, or, for root (who ignores modes),
    a folder of a read-only system file system."""
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o500)
    for candidate in (folder, Path("/sys"), Path("/proc")):
        try:
            (candidate / ".t2av_probe").touch()
        except OSError:
            return candidate
        (candidate / ".t2av_probe").unlink()
    pytest.skip("every folder is writable for this user")
