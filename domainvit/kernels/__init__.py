"""Neighbourhood-attention ops (``na1d``/``na2d``/``na3d``) and their backends.

Follows NATTEN's generalized neighbourhood attention and its heads-last functional
interface; :mod:`domainvit.kernels.functional` is the specification.
"""

from domainvit._layout import mapped_package_path

# the modules of the top-level kernels/ folder (see domainvit._layout)
__path__ = mapped_package_path(__path__, "kernels")

from .call import AttentionCall
from .dispatch import Backend, backend_names, choose_backend
from .functional import na1d, na2d, na3d

__all__ = [
    "AttentionCall",
    "Backend",
    "backend_names",
    "choose_backend",
    "na1d",
    "na2d",
    "na3d",
]
