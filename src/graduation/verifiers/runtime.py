"""Process-wide facts a verifier may ask: whether it runs inside an isolated pool worker."""

IN_WORKER = False
