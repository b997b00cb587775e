"""Tools around the model: ablations, the speed benchmark, the size summary, the
inter-AU relations figure and the compile-only fit check for accelerators
(`aot`)."""
