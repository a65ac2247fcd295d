"""Stand-in for comfy.samplers.KSAMPLER with k-diffusion style Euler and a *_cfg_pp function to refuse."""


def sample_euler(model, x, sigmas, extra_args=None, callback=None, disable=None):
    s_in = x.new_ones([x.shape[0]])
    for i in range(len(sigmas) - 1):
        denoised = model(x, sigmas[i] * s_in, **(extra_args or {}))
        d = (x - denoised) / sigmas[i]
        x = x + d * (sigmas[i + 1] - sigmas[i])
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

        x = self.sampler_function(model_k, x, sigmas, extra_args={}, callback=None, disable=disable_pbar)
        return sampling.inverse_noise_scaling(sigmas[-1], x)


def sampler_object(name):
    return KSAMPLER({"euler": sample_euler, "euler_cfg_pp": sample_euler_cfg_pp}[name])
