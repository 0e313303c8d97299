"""Generic NVIDIA: architectures from sm80 on that no family claims (sm87 Jetson Orin, sm100/sm103
Blackwell, sm120/sm121 RTX 50xx and DGX Spark, later ones). They run sm80's data, the table of
the oldest architecture the kernel supports; select_config's shared-memory fit trims its stages
to the device (sm120: 99 KB per block). compile-check compiles it for sm100 and sm120.
"""

from . import sm80
from .config import Family

FAMILY = Family("nvidia", "nvidia", claims=(), archs={"sm120": 101376, "sm100": 232448},
                kinds=sm80.FAMILY.kinds)
