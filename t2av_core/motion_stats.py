"""Per-channel statistics of LIA-X motion codes that the released model was trained on.

The model consumes and produces normalised motion ``(raw - mean) / std``; these are the official values
(float32) shipped beside the released LIA-X weights as ``motion_mean.npy`` / ``motion_std.npy``.
"""

import torch

MOTION_MEAN = (
    0.00636434881, 0.0174848288, 0.0163969472, -0.0135359485, -0.0241865516,
    0.000276537379, 0.0010602104, 0.0169865601, -0.0109868469, 0.00738304015,
    -0.0248002, 0.0179993976, -0.000802936556, -0.0232445262, 0.00633576093,
    -0.128342748, 0.0611694865, -0.00699341437, 0.732209623, -0.0304829534,
    0.0120833544, -0.0088436557, 0.00155583082, -0.0811735988, -0.000116097603,
    0.0168400258, -0.00317181926, -0.0809529647, -0.0448323451, -0.118288256,
    0.000412531634, -0.00617628498, -0.00651681051, 0.273776054, 0.0128538711,
    -0.0502625145, -0.0031032823, 0.120464787, -0.0468954556, -0.199780911,
)
MOTION_STD = (
    0.0845437869, 0.0612202361, 0.0753789544, 0.120993495, 0.0652391687,
    0.0199999996, 0.0588212423, 0.0424233116, 0.0540542044, 0.0490279719,
    0.0722758844, 0.0527252369, 0.0278021377, 0.0535792224, 0.0244491808,
    0.415293634, 0.182715282, 0.0379853994, 0.790606201, 0.051438842,
    0.0563602895, 0.0858712196, 0.0199999996, 0.118270561, 0.0847435445,
    0.0649832934, 0.0328106284, 0.119603932, 0.286964893, 0.185333312,
    0.047593683, 0.0971657187, 0.0199999996, 0.674350142, 0.0199999996,
    0.164688706, 0.0498284549, 0.726542413, 0.108559966, 0.4020769,
)
STD_FLOOR = 1e-6


def motion_stats(dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    mean = torch.tensor(MOTION_MEAN, dtype=torch.float32)
    std = torch.tensor(MOTION_STD, dtype=torch.float32).clamp_min(STD_FLOOR)
    return mean.to(dtype), std.to(dtype)


def normalize_motion(raw: torch.Tensor, mean: torch.Tensor | None = None, std: torch.Tensor | None = None) -> torch.Tensor:
    if mean is None or std is None:
        mean, std = motion_stats()
    return (raw - mean.to(raw)) / std.to(raw)


def denormalize_motion(norm: torch.Tensor, mean: torch.Tensor | None = None, std: torch.Tensor | None = None) -> torch.Tensor:
    if mean is None or std is None:
        mean, std = motion_stats()
    return norm * std.to(norm) + mean.to(norm)
