"""Verifiers written for the example domains, loaded by the ``python`` kind as ``domains.verifiers.<module>:<fn>``."""
