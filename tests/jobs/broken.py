import dagster as dg
import this_module_does_not_exist  # noqa: F401

defs = dg.Definitions()
