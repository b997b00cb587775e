"""The FACS Action Units each dataset codes, by AU number: the one definition the
TFDS builders, the data registry, the models and the analysis share."""

# BP4D-Spontaneous occurrence labels (FERA 2015's 12), in the builder's order.
BP4D = (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24)
# ... of which FERA 2015's intensity subset codes these, 0-5 per frame.
BP4D_INTENSITY = (6, 10, 12, 14, 17)
# DISFA: the 8 AUs of the standard protocol (present where intensity >= 2) ...
DISFA = (1, 2, 4, 6, 9, 12, 25, 26)
# ... of the 12 it codes (intensity 0-5 per frame), all with intensity.
DISFA_CODED = (1, 2, 4, 5, 6, 9, 12, 15, 17, 20, 25, 26)

