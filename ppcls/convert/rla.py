"""Conversion rules (family not yet ported)."""
