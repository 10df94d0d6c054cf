"""The lenses: one package per way of looking at a service, registered in ``registry.py``."""
