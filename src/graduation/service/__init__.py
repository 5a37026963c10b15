"""The I/O edge: the only layer that opens a registry transaction or appends to the audit log.

    project      loading domain files from a project, with their files hashed and checked
    decisions    decisions for registered domains (the store and the disk read, the chain checked); the gate
    context      a registered domain version with its files checked; references; rows from files or memory
    validation   verifier validation against references and known-wrong controls (``verifiers check``)
    scan         verifying rows into a tally, here, over forked processes, or on another engine (``engines``)
    verification verdicts from the isolated pool and the verdict cache, counted per verifier
    recording    one transaction for a gathering's validation, record and verdicts
    evaluation   a model's outputs on held-out prompts -> an ``eval`` / ``training_round`` record
    data_audit   a candidate SFT set checked row by row -> a ``data_audit`` record; human audit items
    heldout      held-out prompts that also occur in training data
    approvals    sign-offs, human audits and retractions; ``signoffs`` binds them to what they approve
    attest       DSSE-signed exports and checkpoints
    jobs         planning a training job from a decision; ``launch`` runs one and records its rounds

The CLI, the report and the generated jobs call these; the pure core (spec, records, evidence, policy,
verifiers) never does. Import the submodule you need: importing this package imports nothing.
"""
