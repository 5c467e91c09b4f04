"""The state database: engine, tables, migrations and extraction watermarks."""
