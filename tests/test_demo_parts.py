"""The demo's own codecs, renderer, tokenizer and metrics: real tensors, real round trips."""

import math

import pytest
import torch

from t2av_core.demo.face import BLINK, MOUTH, DemoFaceRenderer, default_face
from t2av_core.demo.mel_codec import HOP, MelCodec
from t2av_core.demo.metrics import lip_sync_correlation
from t2av_core.demo.motion_track import frame_loudness, speech_driven_motion
from t2av_core.demo.text import BEGIN, PAD, SPEAK, VOCAB_SIZE, DemoTokenizer
from t2av_core.demo.training import PATCH, AlignmentHead, Batch, alignment_loss
from t2av_core.demo.voice import SpectralVoiceEmbedder
from t2av_core.errors import T2AVError
from t2av_core.interfaces import AudioCodec, MotionRenderer, SpeakerEncoder
from t2av_core.motion_stats import denormalize_motion, normalize_motion


def _vowels(seconds: float = 2.0, rate: int = 16000) -> torch.Tensor:
    """A buzzy 'voice' whose loudness rises and falls four times a second (syllables)."""
    t = torch.arange(int(seconds * rate)) / rate
    buzz = torch.sin(2 * math.pi * 140 * t) + 0.5 * torch.sin(2 * math.pi * 280 * t) + 0.3 * torch.sin(2 * math.pi * 700 * t)
    envelope = torch.sin(2 * math.pi * 2 * t).abs()
    return 0.3 * buzz * envelope


def test_demo_parts_follow_the_shared_protocols():
    assert isinstance(MelCodec(), AudioCodec)
    assert isinstance(DemoFaceRenderer(), MotionRenderer)
    assert isinstance(SpectralVoiceEmbedder(), SpeakerEncoder)


def test_mel_codec_round_trip_keeps_the_latents_and_the_length():
    codec = MelCodec(griffin_lim_iters=16)
    wave = _vowels()
    latents = codec.encode(wave)
    assert latents.shape == (math.ceil(wave.numel() / HOP), 32)
    decoded = codec.decode(latents)
    assert decoded.shape == (latents.shape[0] * HOP,) and decoded.abs().max() <= 1.0
    again = codec.encode(decoded)
    # Phase is rebuilt, so only the magnitudes come back: compare where there is sound.
    loud = latents.mean(dim=1) > latents.mean()
    assert (again[loud] - latents[loud]).abs().mean() < 0.25 * latents[loud].std()
    with pytest.raises(T2AVError):
        codec.decode(torch.zeros(5, 31))


def test_renderer_paints_the_motion_it_is_given_and_reads_it_back():
    renderer = DemoFaceRenderer(128)
    face = renderer.prepare_face(default_face(128))
    norm = torch.zeros(4, 40)
    norm[:, MOUTH] = torch.tensor([-1.0, 0.5, 1.5, 3.0])
    norm[:, BLINK] = torch.tensor([-0.5, -0.5, 2.5, -0.5])
    frames = renderer.render(face, denormalize_motion(norm))
    assert frames.shape == (4, 128, 128, 3) and 0.0 <= frames.min() and frames.max() <= 1.0
    back = normalize_motion(renderer.encode_motion(frames))
    assert torch.all(back[:, MOUTH].diff() > 0)                       # wider and wider
    assert (back[:, MOUTH] - norm[:, MOUTH]).abs().max() < 0.6
    assert back[2, BLINK] > 1.5 and back[0, BLINK] < 0.5               # closed eyes are seen
    with pytest.raises(T2AVError):
        renderer.render(face, torch.zeros(3, 39))
    with pytest.raises(T2AVError):
        renderer.prepare_face(torch.zeros(4, 4))


def test_a_photo_of_any_size_becomes_a_face_state():
    renderer = DemoFaceRenderer(64)
    state = renderer.prepare_face(torch.rand(300, 171, 3))
    assert state.base.shape == (64, 64, 3)


def test_speech_driven_motion_opens_the_mouth_with_the_sound():
    wave = _vowels()
    motion = speech_driven_motion(wave, 16000, torch.Generator().manual_seed(0))
    assert motion.shape == (frame_loudness(wave, 16000).numel(), 40)
    r, lag = lip_sync_correlation(motion, wave, 16000)
    assert r > 0.9 and lag == 0
    # Shifting the sound by 3 frames is caught by the lag search only up to 2 frames.
    shifted = torch.cat([torch.zeros(3 * 640), wave])[: wave.numel()]
    assert lip_sync_correlation(motion, shifted, 16000)[0] < r


def test_voice_vector_is_standardised_and_refuses_silence():
    embedder = SpectralVoiceEmbedder()
    vector = embedder.embed(_vowels())
    assert vector.shape == (256,) and abs(float(vector.mean())) < 1e-4 and abs(float(vector.std()) - 1) < 1e-3
    with pytest.raises(T2AVError):
        embedder.embed(torch.zeros(16000))


def test_tokenizer_builds_the_prompt_and_refuses_bad_text():
    prompt = DemoTokenizer().build_prompt("  Hello,   World! ")
    ids = prompt.prefix_ids[0].tolist()
    assert ids[0] == BEGIN and ids[-1] == SPEAK and len(ids) == len("hello, world!") + 2
    for bad in ("", "   ", "x" * 201):
        with pytest.raises(T2AVError):
            DemoTokenizer().build_prompt(bad)


def test_alignment_loss_prefers_the_text_the_patches_spell_out():
    # A head that passes its input through: each patch's hidden state is four one-hot frames, which spell
    # "hi" with a blank between and after, so the CTC loss is small for "hi" and large for "ih".
    head = AlignmentHead(PATCH * VOCAB_SIZE)
    with torch.no_grad():
        head.proj.weight.copy_(20.0 * torch.eye(PATCH * VOCAB_SIZE))
        head.proj.bias.zero_()
    tokenizer = DemoTokenizer()
    frames = [tokenizer.text_ids("h")[0], PAD, tokenizer.text_ids("i")[0], PAD]
    mu = torch.nn.functional.one_hot(torch.tensor(frames), VOCAB_SIZE).float().view(1, -1)

    def loss_for(text: str) -> float:
        batch = Batch(prompt_ids=[tokenizer.build_prompt(text).prefix_ids[0]], audio=torch.zeros(1, 1, 4, 32),
                      motion=torch.zeros(1, 1, 4, 40), patches=torch.tensor([1]), speaker=torch.zeros(1, 256),
                      first_motion=torch.zeros(1, 40))
        return alignment_loss(head, mu, batch).item()
    assert loss_for("hi") < 0.01 < 1.0 < loss_for("ih")
