"""Stand-in for comfy.model_management: CPU only, records loads, and an interrupt flag."""

import torch


class InterruptProcessingException(BaseException):  # a BaseException, as in ComfyUI
    pass


interrupt_processing = False
loaded = []  # every patcher passed to load_models_gpu, in order


def get_torch_device():
    return torch.device("cpu")


def unet_offload_device():
    return torch.device("cpu")


def intermediate_device():
    return torch.device("cpu")


def load_models_gpu(models, memory_required=0, **kwargs):
    for patcher in models:
        patcher.model.to(patcher.load_device)
        loaded.append(patcher)


def free_memory(memory_required, device, keep_loaded=()):
    pass


def interrupt_current_processing(value=True):
    global interrupt_processing
    interrupt_processing = value


def throw_exception_if_processing_interrupted():
    global interrupt_processing
    if interrupt_processing:
        interrupt_processing = False
        raise InterruptProcessingException()
