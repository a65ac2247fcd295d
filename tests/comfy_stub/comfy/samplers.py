"""Stand-in for comfy.samplers.KSAMPLER with k-diffusion style Euler and a *_cfg_pp function to refuse."""

import torch


def sample_euler(model, x, sigmas, extra_args=None, callback=None, disable=None):
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **(extra_args or {}))
        d = (x - denoised) / sigmas[i]
        x = x + d * (sigmas[i + 1] - sigmas[i])
    return x


def sample_euler_ancestral(model, x, sigmas, extra_args=None, callback=None, disable=None, eta=1.0,
                           noise_sampler=None):
    """Ancestral Euler as ComfyUI runs it for flow (CONST) models: step down below the next time, scale back
    to the data/noise mix of the next time and add fresh noise for the rest."""
    extra_args = extra_args or {}
    if noise_sampler is None:  # ComfyUI's default: a generator seeded from extra_args["seed"] on x's device
        generator = torch.Generator(device=x.device).manual_seed(extra_args.get("seed", 0) + 1)
        noise_sampler = lambda s, s_next: torch.randn(x.shape, generator=generator, device=x.device)  # noqa: E731
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        t, t_next = sigmas[i], sigmas[i + 1]
        denoised = model(x, t * s_in, **extra_args)
        if t_next == 0:
            x = denoised
            continue
        t_down = t_next * (1 + (t_next / t - 1) * eta)
        ratio = t_down / t
        x = ratio * x + (1 - ratio) * denoised
        keep = (1 - t_next) / (1 - t_down)
        fresh = (t_next ** 2 - t_down ** 2 * keep ** 2) ** 0.5
        x = keep * x + noise_sampler(t, t_next) * fresh
    return x


def sample_euler_cfg_pp(model, x, sigmas, extra_args=None, callback=None, disable=None):
    raise RuntimeError("needs the CFG guider")


class KSAMPLER:
    def __init__(self, sampler_function, extra_options={}, inpaint_options={}):
        self.sampler_function, self.extra_options = sampler_function, extra_options

    def sample(self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None,
               disable_pbar=False):
        sampling = model_wrap.inner_model.model_sampling
        x = sampling.noise_scaling(sigmas[0], noise, latent_image)

        def model_k(x, sigma, **kwargs):
            return model_wrap(x, sigma, model_options=extra_args.get("model_options", {}), seed=extra_args.get("seed"))

        x = self.sampler_function(model_k, x, sigmas, extra_args=extra_args, callback=None, disable=disable_pbar,
                                  **self.extra_options)
        return sampling.inverse_noise_scaling(sigmas[-1], x)


def sampler_object(name):
    return KSAMPLER({"euler": sample_euler, "euler_ancestral": sample_euler_ancestral,
                     "euler_cfg_pp": sample_euler_cfg_pp}[name])
