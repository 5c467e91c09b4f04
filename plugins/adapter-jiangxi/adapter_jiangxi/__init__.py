"""Jiangxi: the national interface, plus the province's penalty discretion table (002)."""
