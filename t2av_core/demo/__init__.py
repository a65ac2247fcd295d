"""The bundled demo: a few-million-parameter Talker-T2AV the project trains itself on synthetic data.

Everything here is demo-only and deliberately simple, so a new user (and CI) can run the real generation
pipeline on a CPU in seconds without the multi-GB released weights:

* ``sentences``   – seeded English sentences from a small grammar;
* ``speech``      – speech for those sentences with the espeak-ng program (training/eval only);
* ``mel_codec``   – a 32-d log-mel audio latent at 25 Hz with a Griffin-Lim decoder (an ``AudioCodec``);
* ``voice``       – a fixed-function 256-d voice embedding from spectral statistics (a ``SpeakerEncoder``);
* ``face``        – a parametric 2D face painter driven by the first motion dims (a ``MotionRenderer``);
* ``motion_track``– face motion derived from the speech (mouth follows loudness) for the training videos;
* ``text``        – character-level prompt ids for the small model;
* ``bundle``      – the committed weights and config in ``assets/`` and how to load them.
"""
