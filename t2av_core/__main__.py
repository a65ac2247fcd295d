"""Command line: text -> talking-face mp4 with the same pipeline stages as the ComfyUI nodes.

    python -m t2av_core generate --text "Hello, nice to meet you." --out out.mp4
    python -m t2av_core generate --text "..." --voice me.wav --face me.png --models /path/to/talker_t2av
    python -m t2av_core generate --text "..." --face group.jpg --face-box 640,200,300,360 --crop-only
    python -m t2av_core convert --component lia_x lia-x.pt lia_x.safetensors

With the released weights (``--models DIR``, or ``models/talker_t2av`` under the current folder as ComfyUI
keeps them) the released models run; otherwise the small bundled demo model does, and the command says so.
Exit codes: 0 done, 2 bad input (message says what to fix), 1 internal error, 130 cancelled (Ctrl-C).
The mp4 appears only once it is complete; a failed or cancelled run leaves no file and an existing one as it was.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT, EXIT_CANCELLED = 0, 1, 2, 130
COMPONENTS_FOLDER = Path("models") / "talker_t2av"  # where ComfyUI keeps them, relative to its folder
VOICE_SECONDS = 31  # the recipe uses 30 s of a voice recording; one more covers the resampling filter

def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Progress:
    """progress(done, total) callback that prints a line about every 10 % of a long step."""

    def __init__(self, label: str):
        self.label, self.shown, self.start = label, -1, time.time()

    def __call__(self, done: int, total: int) -> None:
        tenth = int(10 * done / max(total, 1))
        if tenth != self.shown:
            self.shown = tenth
            _log(f"  {self.label}: {done}/{total} ({time.time() - self.start:.1f} s)")


@dataclass
class LoadedModels:
    talker: object
    tokenizer: object
    audio_codec: object
    renderer: object
    speaker_encoder: object
    name: str


def released_files(folder: Path) -> dict[str, Path]:
    """The released components in ``folder``; T2AVError naming what is missing when only some are there."""
    from .errors import T2AVError
    from .layout import RELEASED_FILES, find_file
    found = {part: find_file(folder, part) for part in RELEASED_FILES}
    missing = [f"{part} ({' or '.join(RELEASED_FILES[part])})" for part, path in found.items() if path is None]
    if missing:
        raise T2AVError(f"{folder} does not hold all released Talker-T2AV files; missing: {', '.join(missing)}")
    return found


def load_models(models_dir: Path | None, context_patches: int | None = None) -> LoadedModels:
    from .errors import T2AVError
    if models_dir is not None and not models_dir.is_dir():
        raise T2AVError(f"--models {models_dir} is not a folder")
    folder = models_dir or (COMPONENTS_FOLDER if (COMPONENTS_FOLDER / "model.safetensors").is_file() else None)
    if folder is not None:
        from . import pipeline
        files = released_files(folder)
        _log(f"loading the released Talker-T2AV weights from {folder} (generator in "
             f"{pipeline.describe_precision('auto', 'cpu')}) ...")
        m = pipeline.load_models(**{k: str(v) for k, v in files.items()}, context_patches=context_patches)
        for note in m.talker.config_notes:
            _log(f"  {note}")
        return LoadedModels(m.talker, m.tokenizer, m.audio_codec, m.renderer, m.speaker_encoder,
                            f"released weights in {folder}")
    import torch

    from .demo.bundle import load_demo
    if context_patches is not None:
        raise T2AVError("--context-patches applies to the released weights (--models); the bundled demo model "
                        "uses the value it was trained with")
    # The demo's matrices are tiny (width 128): one thread avoids hand-off costs that can slow it 10x+
    # on a busy machine.
    torch.set_num_threads(1)
    _log("no released weights found (--models DIR or ./models/talker_t2av): using the bundled demo model "
         "(small, trained on synthetic speech and a drawn face; for trying the pipeline, not for quality)")
    demo = load_demo()
    return LoadedModels(demo.talker, demo.tokenizer, demo.audio_codec, demo.renderer, demo.speaker_encoder,
                        "bundled demo model")


def check_arguments(args: argparse.Namespace) -> Path:
    """Everything about the command line that can be wrong, found before any model is loaded. Returns --out."""
    from .atomic import check_destination
    from .errors import T2AVError
    from .sampling.noise import check_seed
    out = Path(args.out)
    if out.suffix.lower() != ".mp4":
        raise T2AVError(f"the output must be an .mp4 file, got {out.name}")
    check_destination(out, "output")  # a folder, a missing folder, no permission: before minutes of work
    if args.max_seconds is not None and not (math.isfinite(args.max_seconds) and args.max_seconds > 0):
        raise T2AVError(f"--max-seconds must be a positive number of seconds (or none), got {args.max_seconds}")
    check_seed(args.seed)
    for option, path in (("--text-file", args.text_file), ("--batch", args.batch)):
        if path is not None and not Path(path).is_file():
            raise T2AVError(f"{option} {path} is not a file" if Path(path).exists() else f"{option} not found: {path}")
    if args.face is None and (args.face_box is not None or args.crop_only or args.colour_match):
        raise T2AVError("--face-box, --crop-only and --colour-match apply to a --face picture; give one")
    if args.face_box is not None:
        from .face import parse_box
        parse_box(args.face_box)  # four numbers, or a message now rather than after loading the models
    for option, path in (("--voice", args.voice), ("--face", args.face)):
        if path is not None and Path(path).is_dir():
            raise T2AVError(f"{option} {path} is a folder; give the file itself")
        if path is not None and not Path(path).is_file():
            raise T2AVError(f"{option} file not found: {path}")
    return out


def generate(args: argparse.Namespace) -> int:
    from . import pipeline
    from .media.audio_io import read_audio

    out = check_arguments(args)
    started = time.time()
    script = read_script(args)
    long = pipeline.LongFormSettings(chunk_seconds=args.chunk_seconds, pause_seconds=args.pause,
                                     max_seconds=args.max_seconds)
    models = load_models(Path(args.models) if args.models else None, args.context_patches)

    # Without --voice / --face the models' own defaults are used (the demo has them; the released ones ask)
    wave, rate = None, None
    if args.voice is not None:  # only the first 30 s are used: an hour-long file is not read whole
        rate = models.speaker_encoder.sample_rate
        wave = read_audio(args.voice, rate, max_seconds=VOICE_SECONDS)
    voice = pipeline.encode_voice(models.speaker_encoder, None, wave, rate)
    # A --face photo is cropped to its face as the renderer expects, and the result pasted back into it.
    photo = None
    if args.face is not None:
        from .face.photo import frame_photo
        photo = frame_photo(args.face, args.face_box)
        _log(f"face: {photo.describe()}")
    face = pipeline.encode_face(models.renderer, photo.crop_image if photo is not None else None)

    if args.batch is not None:
        return generate_batch(args, out, script, models, voice, face, photo, started)
    _log(f"generating speech and motion with the {models.name} (seed {args.seed}) ...")
    # A script of any length: planned into chunks of about --chunk-seconds, each continuing the one before
    av, _ = pipeline.sample_long(models.talker, models.tokenizer, script, voice, face, pipeline.SamplerParts(),
                                 args.seed, long, audio_codec=models.audio_codec, progress=Progress("patches"),
                                 on_chunk=_log_chunk)
    _log(f"  {av.seconds:.2f} s of audio and video ({av.stop_reason})")
    _log("decoding audio ...")
    wave, rate = pipeline.decode_audio(models.audio_codec, av, progress=Progress("audio"))
    _log("rendering frames and writing the video ...")
    # Frames are rendered batch by batch as the encoder takes them: memory does not grow with the length.
    pipeline.mux(out, output_frames(args, models, face, photo, av, Progress("frames")), wave, rate)
    _log(f"wrote {out} ({av.audio.shape[0]} frames, {wave.numel() / rate:.2f} s) in {time.time() - started:.1f} s")
    return EXIT_OK


def output_frames(args: argparse.Namespace, models: LoadedModels, face, photo, av, progress=None):
    """The rendered frames as they go into the mp4: pasted back into the --face photo unless --crop-only."""
    from . import pipeline
    frames = pipeline.render_frames(models.renderer, face, av, progress=progress)
    if photo is None or args.crop_only:
        return frames
    from .face import paste_back
    return paste_back(frames, photo.pixels, photo.crop, colour_match=args.colour_match)


def generate_batch(args: argparse.Namespace, out: Path, lines: str, models: LoadedModels, voice, face, photo,
                   started: float) -> int:
    """--batch: every line of the file is one clip, all generated together; clip i goes to OUT_i.mp4."""
    from . import pipeline
    batch = pipeline.encode_lines(models.tokenizer, lines, where=f"--batch {args.batch}")
    outputs = batch_outputs(out, len(batch))
    _log(f"generating {len(batch)} clips in one batch with the {models.name} (seed {args.seed}) ...")
    # line 1 gets the seed itself, the others seeds derived from it
    clips = pipeline.sample_batch(models.talker, list(batch.conditions), voice, face, pipeline.SamplerParts(),
                                  args.seed, max_seconds=args.max_seconds or 30.0, progress=Progress("patches"))
    for path, av in zip(outputs, clips):
        wave, rate = pipeline.decode_audio(models.audio_codec, av)
        pipeline.mux(path, output_frames(args, models, face, photo, av), wave, rate)
        _log(f"wrote {path} ({av.audio.shape[0]} frames, {av.stop_reason})")
    _log(f"{len(clips)} clips in {time.time() - started:.1f} s")
    return EXIT_OK


def read_script(args: argparse.Namespace) -> str:
    """The text to speak: --text, or the UTF-8 file --text-file (or --batch)."""
    from .errors import T2AVError
    path, option = (args.text_file, "--text-file") if args.text_file is not None else (args.batch, "--batch")
    if path is None:
        return args.text
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise T2AVError(f"{option} {path} is not UTF-8 text (byte {error.start}); save it as UTF-8") from None


def batch_outputs(out: Path, count: int) -> list[Path]:
    """OUT_1.mp4, OUT_2.mp4, ... beside --out, each checked writable before anything runs."""
    from .atomic import check_destination
    return [check_destination(out.with_name(f"{out.stem}_{i}{out.suffix}"), "output") for i in range(1, count + 1)]


def _log_chunk(index: int, count: int, text: str) -> None:
    if count > 1:
        _log(f"  chunk {index + 1}/{count}: {text[:60]}{'...' if len(text) > 60 else ''}")


def _seconds_or_none(value: str) -> float | None:
    return None if value.strip().lower() == "none" else float(value)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m t2av_core", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="text -> talking-face mp4 with speech")
    words = gen.add_mutually_exclusive_group(required=True)
    words.add_argument("--text", help="what the face says (any length: long texts are read chunk by chunk)")
    words.add_argument("--text-file", help="a UTF-8 text file with the script to read, of any length")
    words.add_argument("--batch", help="a UTF-8 text file with one text per line, generated together in one "
                                       "batch: clip i is written as OUT_i.mp4 (OUT from --out)")
    gen.add_argument("--voice", help="a speech recording whose voice to use (wav, mp3, ...)")
    gen.add_argument("--face", help="a portrait picture (png, jpg, ...); any size. Its face is found, cropped as the "
                                    "renderer expects, and the result pasted back: the mp4 has the picture's size")
    gen.add_argument("--face-box", metavar="X,Y,W,H", help="the face's box in the picture's pixels (brows to chin, "
                                                           "cheek to cheek), instead of finding it")
    gen.add_argument("--crop-only", action="store_true", help="write the 512x512 face crop video, not pasted back")
    gen.add_argument("--colour-match", action="store_true", help="match the rendered face's colours to the photo's")
    gen.add_argument("--seed", type=int, default=0, help="same seed, same result (0 .. 2**64-1; every bit counts)")
    gen.add_argument("--out", default="out.mp4", help="the mp4 to write (default: out.mp4)")
    gen.add_argument("--models", help="folder with the released weights (default: ./models/talker_t2av if "
                                      "present, else the bundled demo model)")
    gen.add_argument("--max-seconds", type=_seconds_or_none, default=None,
                     help="cap on the whole clip in seconds, or none (default: as long as the text needs)")
    gen.add_argument("--chunk-seconds", type=float, default=18.0,
                     help="a long script is read in chunks of about this much speech (2-30 s, default 18)")
    gen.add_argument("--pause", type=float, default=0.0, help="seconds of silence between chunks (default 0)")
    gen.add_argument("--context-patches", type=int, help="previous patches each flow head sees (default: what the "
                                                         "checkpoint records, else the released 1)")
    commands.add_parser("convert", help="convert released weights to .safetensors (see convert --help)",
                        add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["convert"]:
        from .convert import main as convert_main
        return convert_main(argv[1:])
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse already printed the usage error
        return EXIT_OK if exit_.code == 0 else EXIT_BAD_INPUT
    from .errors import GenerationCancelled, T2AVError
    try:
        return generate(args)
    except T2AVError as err:
        _log(f"error: {err}")
        return EXIT_BAD_INPUT
    except (KeyboardInterrupt, GenerationCancelled):
        _log("cancelled; no output was written (an existing file is unchanged)")
        return EXIT_CANCELLED
    except Exception as err:  # a bug or a broken environment: show where, keep the exit code meaningful
        import traceback
        traceback.print_exc()
        _log(f"internal error: {type(err).__name__}: {err}")
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
