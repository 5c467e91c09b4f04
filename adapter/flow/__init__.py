"""One flow for every transaction: the stages of a cycle (extract, check, build, send, settle),
each in its own module, and :mod:`adapter.flow.cycle`, the only module that knows their order."""
