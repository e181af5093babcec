"""Pure functions on Terraform state JSON: parsing, write rules, diff, secret scan.

Nothing in this package does I/O, so the server, the CLI and tests share one truth.
"""
