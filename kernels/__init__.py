"""Neighbourhood-attention ops (``na1d``/``na2d``/``na3d``) and their backends."""
