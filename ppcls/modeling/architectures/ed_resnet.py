"""(family not yet ported)"""
