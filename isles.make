# isles.make — ISLES 2018 stroke lesions on CT perfusion (2 classes, 5 input channels),
# the boundary-loss paper's setting (Kervadec et al., MIDL 2019).
#
#   make -f isles.make                 real data (data/ISLES2018_{Training,Testing}.zip;
#                                      registration required: see lineage/isles.lineage)
#   make -f isles.make TOY=1           embedded deterministic toy data
#   make -f isles.make TOY=hard        the hard toy: small, sparse, low-contrast lesions
#                                      (see "The hard toy" below and README.md)
#   make -f isles.make predict         best-model predictions of the TESTING cases, named
#                                      for a challenge submission (results/isles/predict/)
#   make -f isles.make help            targets and knobs
#
# Channels, in this order: CT, CT_CBV, CT_CBF, CT_MTT, CT_Tmax (segline/datasets/isles.py).
# CT is windowed (WINDOW, HU); each perfusion map is scaled by its own robust percentiles
# over the brain (non-zero voxels). Split of the TRAINING cases (natural order): the first
# N_TEST are the labelled held-out test set, the next N_VAL validation (the paper's 20
# retained cases), the rest train; the TESTING cases (no ground truth) are only predicted.

DS_NAME := isles
REAL_ARCHIVES := data/ISLES2018_Training.zip data/ISLES2018_Testing.zip
REAL_LINEAGE := lineage/isles.lineage
# Toy variants (make/common.mk): TOY=hard is results/isles-hard-toy, data/isles-hard-toy.
TOY_VARIANTS := hard
include make/toy.mk
ifeq ($(TOY),hard)
TOY_ARCHIVES := data/isles-hard-toy_Training.zip data/isles-hard-toy_Testing.zip
TOY_LINEAGE := lineage/isles-hard-toy.lineage
TOY_GENERATOR := isles-hard
else
TOY_ARCHIVES := data/isles-toy_Training.zip data/isles-toy_Testing.zip
TOY_LINEAGE := lineage/isles-toy.lineage
TOY_GENERATOR := isles
endif
ADAPTER := isles
# The raw 4D perfusion series are large and unused: left out when unpacking.
UNPACK_ARGS := --exclude '*CT_4DPWI*'

# Dataset defaults (override on the command line).
# The hard toy (segline/datasets/toy_isles.py ISLES_HARD_TOY): 30 labelled cases with
# 1-3 lesions of a few mm, CBF/CBV of the core close to the penumbra's, twice the
# noise; 12 test cases so that a paired test over test cases can find a difference.
# Its methods are the ISLES defaults below (gdl the reference): in 5 epochs they already
# differ over the 12 test cases (bench/RESULTS.md, "The hard ISLES toy"), so the hard
# toy adds no method of its own; plain cross-entropy is there as METHODS='... ce'.
ifeq ($(TOY),hard)
N_TEST ?= 12
N_VAL ?= 3
EPC ?= 5
NET ?= UNet
INPLANE ?= 64
else ifneq ($(filter-out $(TOY_VARIANTS),$(IS_TOY)),)
N_TEST ?= 2
N_VAL ?= 2
EPC ?= 6
NET ?= UNet
INPLANE ?= 64
else
N_TEST ?= 10
N_VAL ?= 20
INPLANE ?= 256
endif
# The published code's ISLES settings (LIVIAETS/boundary-loss isles.make: UNet, 200 epochs,
# learning rate 1e-3), except the batch size: 8 here, 4 in the published script (twice
# the slices per step).
EPC ?= 200
NET ?= UNet
BS ?= 8
LR ?= 1e-3
# Brain window (level 40, width 80 HU: [0, 80] HU -> [0, 1]); the soft-tissue default
# (40,400) would squeeze grey/white matter and an early infarct into a few grey levels.
WINDOW ?= 40,80
SLICE_ARGS = $(if $(filter none,$(WINDOW)),--no-window,--window=$(WINDOW)) $(if $(INPLANE),--inplane=$(INPLANE))
DATASET_KNOBS_HELP = WINDOW=level,width CT window in HU ($(WINDOW)); INPLANE=N slices resized to NxN px ($(INPLANE))

# Methods: results/<ds>/<method>, each with its loss spec and options.
ALL_METHODS := gdl gdl_boundary gdl_boundary3d gdl_hausdorff
# Not in the defaults (METHODS='gdl ... ce'): plain cross-entropy. With lesions under 1 %
# of the voxels it under-segments in a few epochs (hard toy, 5 epochs: test Dice 0.25).
OPTIONAL_METHODS := ce
DIST := 2d
OPTS :=

include make/common.mk

# $(REBALANCE) (make/common.mk): Kervadec et al.'s schedule (1-a)*GDL + a*boundary,
# a = 0.01*epoch, epochs counted from 1.
$(call method,ce): LOSSES := ce:1
$(call method,gdl): LOSSES := gdl:1
$(call method,gdl_boundary): LOSSES := gdl:1,boundary:0.01$(REBALANCE)
$(call method,gdl_boundary3d): LOSSES := gdl:1,boundary:0.01$(REBALANCE)
$(call method,gdl_boundary3d): DIST := 3d
# Hausdorff-DT (Karimi & Salcudean), two-sided: (p-t)^2 (d_t^a + d_p^a), d_p from the
# thresholded prediction at every step, with |d| (alpha=1) instead of the paper's d^2:
# the maps are in mm and an absent lesion (d_t), like an empty prediction (d_p), gets
# the field-of-view diagonal D (~80 mm on the toy, ~330 mm on real slabs), so d^2 makes
# the term ~D^2 times larger than GDL and the network collapses to empty predictions
# (toy, EPC=6, seed 0, one run each: two-sided d^2 val Dice 0 at every epoch, two-sided
# |d| best 0.81; the one-sided hausdorff_gt (d_t only): |d| 0.90, and its d^2 gave 0
# at every epoch in an earlier run).
$(call method,gdl_hausdorff): LOSSES := gdl:1,hausdorff:0.01[schedule=rebalance;step=0.01;cap=0.99;alpha=1]
