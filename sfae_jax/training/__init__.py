"""Training's library: the train step and the one inference forward, losses,
metrics, checkpoints, the run record, provenance, transfer between runs, and
`trained_run.load`, the one way to load a trained run."""
