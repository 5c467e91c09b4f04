"""The national platform (国家医疗保障信息平台) interface as a yibao-adapter region."""
