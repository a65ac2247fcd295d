"""Host-independent PyTorch implementation of Talker-T2AV (text -> speech + talking face).

Importing this package is cheap; the heavy modules are imported where they are used.
"""

__version__ = "0.1.0"
