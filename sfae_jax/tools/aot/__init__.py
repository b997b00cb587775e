"""Compiling for accelerators this machine does not have (TPU slices, H100/H200).

`python -m sfae_jax.tools.aot` is the fit check (see `__main__`); `targets` names the
devices, `programs` builds the programs the commands run, `fit` compiles and
measures them, `hlo` reads the compiled program.
"""
