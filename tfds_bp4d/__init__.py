"""TFDS builders for the licensed AU datasets, BP4D-Spontaneous (`bp4d/`) and
DISFA (`disfa/`), both from a manual download; their synthetic generators
(`synthetic/`); and `prepare`, which builds the dataset a config names. The
package keeps the design's name although it builds more than BP4D."""
