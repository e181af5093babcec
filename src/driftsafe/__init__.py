"""driftsafe: make a Terraform/OpenTofu stack drift-safe, and prove it with evidence."""

__version__ = "0.1.0"
