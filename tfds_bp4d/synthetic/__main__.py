"""python -m tfds_bp4d.synthetic --out DIR [...]: see the package's docstring."""

from tfds_bp4d.synthetic import main

main()
