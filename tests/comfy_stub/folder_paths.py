"""Stand-in for ComfyUI's folder_paths: model folders and the output folder under one base directory."""

import os

supported_pt_extensions = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}
base_path = os.environ.get("COMFY_STUB_BASE", os.path.join(os.getcwd(), "comfy_stub_base"))
models_dir = os.path.join(base_path, "models")
folder_names_and_paths: dict[str, tuple[list[str], set[str]]] = {}


def set_base(path: str) -> None:
    global base_path, models_dir
    base_path, models_dir = path, os.path.join(path, "models")


def add_model_folder_path(name, path, is_default=False):
    paths, exts = folder_names_and_paths.get(name, ([], set()))
    if path not in paths:
        paths = [path, *paths] if is_default else [*paths, path]
    folder_names_and_paths[name] = (paths, exts)


def get_folder_paths(name):
    return list(folder_names_and_paths[name][0])


def get_filename_list(name):
    paths, exts = folder_names_and_paths[name]
    found = set()
    for root in paths:
        for folder, _, files in os.walk(root, followlinks=True):
            for f in files:
                if not exts or os.path.splitext(f)[1].lower() in exts:
                    found.add(os.path.relpath(os.path.join(folder, f), root))
    return sorted(found)


def get_full_path(name, filename):
    for root in folder_names_and_paths[name][0]:
        path = os.path.join(root, filename)
        if os.path.isfile(path):
            return path
    return None


def get_output_directory():
    return os.path.join(base_path, "output")


def get_save_image_path(filename_prefix, output_dir, image_width=0, image_height=0):
    subfolder, filename = os.path.split(os.path.normpath(filename_prefix))
    folder = os.path.join(output_dir, subfolder)
    os.makedirs(folder, exist_ok=True)
    taken = [f for f in os.listdir(folder) if f.startswith(filename + "_")]
    return folder, filename, len(taken) + 1, subfolder, filename_prefix
