"""Thin click wrappers: parse, call one library function, format, exit code."""
