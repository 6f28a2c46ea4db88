"""domainvit: vision transformers for medical imaging, remote sensing and 3D perception.

All task models share one core: hierarchical local/global attention, computed by the
neighbourhood-attention ops in :mod:`domainvit.kernels`.

The repository keeps ``kernels/``, ``tasks/``, ``datasets/`` and ``dashboard/`` at the top
level; they are ``domainvit.kernels`` and so on, from a source checkout and from an
installed wheel alike (:mod:`domainvit._layout` says how, and why those folders hold no
``__init__.py``).
"""

__version__ = "0.1.0"
