# make/toy.mk — IS_TOY, read once from TOY. Every dataset makefile includes this file
# before its defaults (after TOY_VARIANTS, its named toy variants, when it has any), and
# make/common.mk uses the same IS_TOY (it includes this file itself when a dataset
# makefile did not).
#
# IS_TOY: non-empty for the embedded toy data, TOY=1 (or yes, true) or a word of
# TOY_VARIANTS (isles.make: TOY=hard); empty for the real data (TOY empty, 0, no or
# false). make/common.mk stops any other TOY value with one line.
IS_TOY := $(filter 1 yes true $(TOY_VARIANTS),$(TOY))
