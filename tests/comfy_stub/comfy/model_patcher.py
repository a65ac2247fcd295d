"""Stand-in for comfy.model_patcher.ModelPatcher: holds a module and its load/offload devices."""


class ModelPatcher:
    def __init__(self, model, load_device, offload_device, size=0, weight_inplace_update=False):
        self.model, self.load_device, self.offload_device = model, load_device, offload_device

    def model_size(self):
        return sum(p.numel() * p.element_size() for p in self.model.parameters())
