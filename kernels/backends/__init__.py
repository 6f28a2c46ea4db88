"""Backends of the neighbourhood-attention ops; :mod:`domainvit.kernels.dispatch` picks one."""
