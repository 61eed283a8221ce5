"""The local stack: everything `make demo` and the tests need to run the pipeline without AWS."""
