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
# Real data: UNet, 200 epochs, batch 8, learning rate 1e-3, constant. The published
# code's ISLES script (LIVIAETS/boundary-loss isles.make with its main.py) trains a UNet
# for 100 epochs, batch 8, Adam at 1e-3 halved by its --schedule (SCHED=halve); its
# first version (2018) had 200 epochs and batch 4. The methods *_ref below follow the
# newest one.
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
# The published code's recipes, gdl_boundary_ref and gdl_hausdorff_ref (below), are
# optional too: they change several settings at once (maps, schedules, LR, epochs), so
# they are a replication to compare with, not a variant of the defaults
# (METHODS='gdl gdl_boundary gdl_boundary_ref gdl_hausdorff gdl_hausdorff_ref').
# gdl_boundary_diagonal and gdl_hausdorff_diagonal are gdl_boundary and gdl_hausdorff
# with an absent class at + the field-of-view diagonal (ABSENT=diagonal, segline's
# earlier default) and nothing else changed: the convention's effect alone. On the hard
# toy they collapse to empty predictions in 1 (boundary) and 2 (Hausdorff) of 3 seeds
# (bench/RESULTS.md, "Absent-class conventions").
OPTIONAL_METHODS := ce gdl_boundary_ref gdl_hausdorff_ref gdl_boundary_diagonal gdl_hausdorff_diagonal
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
# thresholded prediction at every step, with |d| (alpha=1) instead of the paper's d^2,
# on GDL's rebalanced schedule. The maps are in mm, two-sided (the distance to the
# boundary on both sides): on the hard toy's lesion slices the mean d_t^2 is ~490 mm^2,
# so at a constant weight 0.1 (the reference's gdl_hausdorff_w, gdl_hausdorff_ref
# below) the d^2 term outweighs GDL ~10 times from the first step and every seed
# collapses to empty predictions (3 of 3 seeds, test Dice 0), while |d| at 0.01
# rising trains in 3 of 3 (bench/RESULTS.md, "Absent-class conventions").
$(call method,gdl_hausdorff): LOSSES := gdl:1,hausdorff:0.01[schedule=rebalance;step=0.01;cap=0.99;alpha=1]
$(call method,gdl_boundary_diagonal): LOSSES := gdl:1,boundary:0.01$(REBALANCE)
$(call method,gdl_boundary_diagonal): ABSENT := diagonal
$(call method,gdl_hausdorff_diagonal): LOSSES := gdl:1,hausdorff:0.01[schedule=rebalance;step=0.01;cap=0.99;alpha=1]
$(call method,gdl_hausdorff_diagonal): ABSENT := diagonal

# The published code's ISLES recipe (LIVIAETS/boundary-loss, newest isles.make and
# main.py), one method per loss: maps with an absent class at 0 (ABSENT=zero, also the
# Hausdorff map of an empty prediction), the LR halving of its --schedule (SCHED=halve),
# batch 8, LR 1e-3 and, on real data, its 100 epochs. A toy keeps its EPC (100 epochs
# of a toy would take long and the other methods train EPC). A knob given on make's
# command line (EPC=, BS=, SCHED=, ABSENT=) applies to these methods too.
REF_METHODS := gdl_boundary_ref gdl_hausdorff_ref
$(foreach m,$(REF_METHODS),$(call method,$(m))): ABSENT := zero
$(foreach m,$(REF_METHODS),$(call method,$(m))): SCHED := halve
$(foreach m,$(REF_METHODS),$(call method,$(m))): BS := 8
$(foreach m,$(REF_METHODS),$(call method,$(m))): LR := 1e-3
ifeq ($(IS_TOY),)
$(foreach m,$(REF_METHODS),$(call method,$(m))): EPC := 100
endif
# gdl_surface_steal: GDL (both classes) weight 1 and boundary (lesion) 0.01, StealWeight
# moving 0.01 from GDL (at least 0.1) to the boundary term after every epoch.
$(call method,gdl_boundary_ref): LOSSES := gdl:1,boundary:0.01[schedule=steal;step=0.01]
# gdl_hausdorff_w: GDL weight 1 plus its HausdorffLoss (lesion) at a constant 0.1,
# squared distances (alpha=2), no weight schedule. The term here stays segline's
# Hausdorff-DT (mm, |signed distance| on both sides of the boundary): the reference's
# maps are in pixels and 0 outside the object (README, "Where segline differs").
$(call method,gdl_hausdorff_ref): LOSSES := gdl:1,hausdorff:0.1[alpha=2]
