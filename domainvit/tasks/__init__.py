"""Task packages, one per field problem; each registers itself with
:func:`domainvit.registry.register_task` when imported."""

from domainvit._layout import mapped_package_path

# the modules of the top-level tasks/ folder (see domainvit._layout)
__path__ = mapped_package_path(__path__, "tasks")
