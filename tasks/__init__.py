"""Task packages, one per field problem; each registers itself with
:func:`domainvit.registry.register_task` when imported."""
