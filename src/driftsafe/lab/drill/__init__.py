"""The drill: ``driftsafe lab run``."""
