"""Stand-in for the rectified-flow pieces of comfy.model_sampling."""

import torch


class ModelSamplingDiscreteFlow(torch.nn.Module):
    pass


class CONST:
    def noise_scaling(self, sigma, noise, latent_image, max_denoise=False):
        return sigma * noise + (1.0 - sigma) * latent_image

    def inverse_noise_scaling(self, sigma, latent):
        return latent / (1.0 - sigma)
