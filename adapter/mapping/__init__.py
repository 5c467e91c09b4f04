"""Map: hospital codes to national codes through the 目录对照 tables."""
