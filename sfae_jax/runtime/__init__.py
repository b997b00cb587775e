"""Where programs run: joining a multi-process job, the device mesh and batch
layout, the compilation cache, accelerators' peaks, command-line parsing and
atomic file writes."""
